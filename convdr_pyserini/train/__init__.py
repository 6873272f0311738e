"""ConvDR few-shot training: knowledge distillation, ranking, multi-task, cross-validation, warm-up.

    python -m convdr_pyserini.train --topics convdr/cast20/mini --teacher minilm --query no_res --loss kd \
        --epochs 8 --lr 1e-4 --cv 5 --seed 42 --output encoders/convdr-kd-cast20-mini
    python -m convdr_pyserini.train negatives --topics convdr/cast20 --run runs/teacher-manual.trec \
        --output data/ranking.jsonl

Modules: `data` (KD pairs, ranking data, negative mining, passage lookup), `loop` (losses and the
optimisation loop), `__main__` (the command line, cross-validation and the saved encoder cards).
Importing this package imports neither torch nor pyserini.
"""
