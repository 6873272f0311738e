"""The conversational run explorer: one offline HTML page showing what every run did to every turn of every
conversation (the overview with significance, each conversation as a timeline, each turn's hits side by side).

    import convdr_pyserini as cp
    explorer = cp.compare("convdr/cast20/mini", {"dense raw": "runs/cast20-mini.minilm-raw.trec",
                                                 "ConvDR-KD": "runs/cast20-mini.convdr-kd-no_res.trec"},
                          qrels="convdr/cast20/mini", texts="convdr/cast20/mini", baseline="dense raw")
    explorer.turns[0]["runs"]["ConvDR-KD"]["values"]      # the per-turn records, plain data
    explorer.write("cast20-mini.html")

Modules: `explorer` (`compare`, `Explorer`: the data, every number through `convdr_pyserini.evaluate`), `overlap`
(RBO, overlap@k), `page` (the self-contained HTML: the data embedded as escaped JSON, the inline script and style
in `assets/`). The command line is `python -m convdr_pyserini.compare`.
"""
from .._callable import make_module_callable
from .explorer import Explorer, compare, run_names
from .overlap import overlap_at, rbo

__all__ = ["Explorer", "compare", "overlap_at", "rbo", "run_names"]

make_module_callable(__name__, "compare")
