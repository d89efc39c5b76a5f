from transformers_neuronx._standin import StandInSamplingModel


class LlamaForSampling(StandInSamplingModel):
    pass
