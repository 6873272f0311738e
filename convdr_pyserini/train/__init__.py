"""ConvDR few-shot training: knowledge distillation, ranking, multi-task, cross-validation, warm-up, seeds.

    import convdr_pyserini as cp
    cp.train(cp.TrainConfig(topics="convdr/cast20/mini", teacher="minilm", query="no_res", loss="kd",
                            epochs=3, lr=1e-4, cv=5, seeds=[1, 2, 3], output="encoders/convdr-kd-mini"))

Modules: `config` (`TrainConfig`), `data` (KD pairs, ranking data, negative mining, passage lookup), `loop`
(losses and the optimisation loop), `training` (`train`, folds, seeds, saving). The command line is
`python -m convdr_pyserini.train` (and `... train negatives`). Importing this package imports neither torch
nor pyserini.
"""
from .._callable import make_module_callable
from .config import TrainConfig
from .data import mine_ranking_data

__all__ = ["TrainConfig", "mine_ranking_data", "train"]


def train(config: TrainConfig, cluster=None) -> dict:
    """Train as `config` says (see `convdr_pyserini.train.training.train`); returns a summary. With `cluster`
    (a `RayCluster`), every seed and fold is trained as its own Ray task (`convdr_pyserini.train.distributed`)."""
    if cluster is not None:
        from .distributed import train_on_ray

        return train_on_ray(config, cluster)
    from .training import train as run

    return run(config)


make_module_callable(__name__, "train")
