from transformers_neuronx._standin import StandInSamplingModel


class MixtralForSampling(StandInSamplingModel):
    pass
