"""Mirrors transformers_neuronx.stopping_criteria: criteria return a plain bool, the list is any()."""


class StoppingCriteria:
    def __call__(self, input_ids, scores, **kwargs) -> bool:
        raise NotImplementedError("StoppingCriteria needs to be subclassed")


class StoppingCriteriaList(list):
    def __call__(self, input_ids, scores, **kwargs) -> bool:
        return any(criteria(input_ids, scores) for criteria in self)
