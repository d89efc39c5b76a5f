class NeuronConfig:
    """Mirrors transformers_neuronx.config.NeuronConfig(**kwargs): a bag of compile options."""

    def __init__(self, **kwargs):
        self.continuous_batching = None
        self.__dict__.update(kwargs)
