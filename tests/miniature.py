"""Miniature inputs for the full-scale guide (docs/full-scale.md), in the formats their publishers distribute.

`build(downloads, hf_cache)` writes into `downloads/` what the guide's table of sources says to download, laid out
as the guide says (the data mirror), with the files the package would fetch by itself (the real CAsT-19/20 topics,
qrels, published runs and the sources of the CAsT-20 canonical passages) linked from the shared data folder:

- `collection.tar.gz` (MS MARCO's `collection.tsv`): the 100 real sample passages, the real texts of the CAsT-20
  passages of `convdr/cast20/mini`, a short stand-in text for the best-judged passage of every judged CAsT-19 turn
  (so that positives exist for the ranking loss), and three copies of sample passages that the duplicate list drops;
- `paragraphCorpus.v2.0.tar.xz` (TREC CAR's `paragraphCorpus/dedup.articles-paragraphs.cbor`): the real sample
  paragraphs, then the CAR passages chosen as above, in the cbor layout of the sample (a header, then an
  indefinite-length array of paragraphs, closed);
- `duplicate_list_v1.0.txt`: `MARCO_<pid>:MARCO_<dup>,...` lines, empty lists included;
- `orquac/all_blocks.txt.gz`, `orquac/qrels.txt.gz`, `orquac/preprocessed/{train,dev,test}.txt`: OR-QuAC's formats,
  questions and answers taken from real CANARD dev dialogs (rewrites as manual rewrites, the answer of each question
  read from the next question's history), one block per answer plus distractor blocks;
- `checkpoints/`: tiny random models in the original layouts: ANCE's zip (a transformers 2.x folder named
  "Passage ANCE(FirstP) Checkpoint"), ConvDR's released CAsT-19 and CAsT-20 zips (the CAsT-20 one with the added
  `<response>` token) and DPR `CheckpointState` files (`.cp`) for the OR-QuAC cards;

and into `hf_cache` a Hugging Face hub cache holding a small `bert-base-uncased` vocabulary (the DPR cards'
tokenizer), so that the guide runs with `HF_HUB_OFFLINE=1`. The models are random: the scores mean nothing.
"""
from __future__ import annotations

import collections
import gzip
import io
import json
import re
import tarfile
import zipfile
from pathlib import Path

import torch

from test_convdr_inputs import write_tiny_roberta_tokenizer
from test_encode import ance_state, write_transformers2_folder

ANCE_DIMENSION = 768  # the cards' dimension: the tiny models keep it so that the cards load them unchanged
ANCE_POSITIONS = 66  # 64 tokens: passages and conversations are cut there, which keeps training fast
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
HUB_REVISION = "0" * 40
DUPLICATES = {1: 900000001, 2: 900000002, 3: 900000003}  # sample pid -> a copy of it that the duplicate list drops


def build(downloads: Path, hf_cache: Path, shared_data: Path) -> None:
    downloads.mkdir(parents=True)
    for folder in ("cast-19", "cast-20", "collection-samples"):  # declared files the package fetches itself
        (downloads / folder).symlink_to(shared_data / folder, target_is_directory=True)
    raw = write_cast_sources(downloads / "raw", shared_data)
    with tarfile.open(downloads / "collection.tar.gz", "w:gz") as archive:
        archive.add(raw["msmarco"], "collection.tsv")
    with tarfile.open(downloads / "paragraphCorpus.v2.0.tar.xz", "w:xz") as archive:
        archive.add(raw["car"], "paragraphCorpus/dedup.articles-paragraphs.cbor")
    raw["duplicates"].rename(downloads / raw["duplicates"].name)
    raw["msmarco"].unlink()
    raw["car"].unlink()
    raw["msmarco"].parent.rmdir()
    words = _orquac(downloads, shared_data)
    _checkpoints(downloads / "checkpoints", hf_cache, words)


# -- the CAsT collection --------------------------------------------------------------------------------------
def _cast_passages(shared_data: Path) -> tuple[dict[int, str], dict[str, str]]:
    """(MS MARCO pid -> text, CAR paragraph id -> text): the samples, the mini collection's CAsT-20 passages, and a
    stand-in for the best-judged passage of each judged CAsT-19 turn."""
    from convdr_pyserini.datasets.mini import mini_passages

    marco, car = {}, {}
    for line in (shared_data / "collection-samples/ms_marco_passage_sample.tsv").read_text(encoding="utf-8").splitlines():
        pid, text = line.split("\t", 1)
        marco[int(pid)] = text
    for pid, copy in DUPLICATES.items():
        marco[copy] = marco[pid]
    for doc_id, text in mini_passages().items():
        _add(marco, car, doc_id, text)
    manual = dict(line.rstrip("\r\n").split("\t", 1) for line in
                  (shared_data / "cast-19/evaluation_topics_annotated_resolved_v1.0.tsv").read_text(encoding="utf-8").splitlines()
                  if "\t" in line)
    best: dict[str, tuple[int, str]] = {}
    for line in (shared_data / "cast-19/2019qrels.txt").read_text(encoding="utf-8").splitlines():
        query_id, _, doc_id, grade = line.split()
        if int(grade) >= 2 and (query_id not in best or int(grade) > best[query_id][0]):
            best[query_id] = (int(grade), doc_id)
    for query_id, (_, doc_id) in sorted(best.items()):
        _add(marco, car, doc_id, f"{manual.get(query_id, query_id)} A miniature stand-in passage for {doc_id}.")
    return marco, car


def _add(marco: dict, car: dict, doc_id: str, text: str) -> None:
    if doc_id.startswith("MARCO_"):
        marco.setdefault(int(doc_id[len("MARCO_"):]), text)
    elif doc_id.startswith("CAR_"):
        car.setdefault(doc_id[len("CAR_"):], text)


def write_cast_sources(folder: Path, shared_data: Path) -> dict[str, Path]:
    """The CAsT collection's three source files, unpacked: {"msmarco": collection.tsv, "car": the paragraph cbor,
    "duplicates": duplicate_list_v1.0.txt}."""
    folder.mkdir(parents=True)
    marco, car = _cast_passages(shared_data)
    paths = {"msmarco": folder / "collection.tsv", "car": folder / "dedup.articles-paragraphs.cbor",
             "duplicates": folder / "duplicate_list_v1.0.txt"}
    paths["msmarco"].write_text("".join(f"{pid}\t{marco[pid]}\n" for pid in sorted(marco)), encoding="utf-8")
    paths["car"].write_bytes(_car_corpus(car, shared_data))
    lines = [f"MARCO_{pid}:MARCO_{copy}" for pid, copy in DUPLICATES.items()] + ["MARCO_4:", "MARCO_5:"]
    paths["duplicates"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


def _car_corpus(car: dict[str, str], shared_data: Path) -> bytes:
    """A TREC CAR paragraph cbor: the sample's header and paragraphs, then the chosen passages."""
    import cbor

    sample = (shared_data / "collection-samples/trec_car_paragraph_sample.cbor").read_bytes()
    stream = io.BytesIO(sample)
    cbor.load(stream)  # the header
    if sample[stream.tell():stream.tell() + 1] != b"\x9f":
        raise AssertionError("the CAR sample is not an indefinite-length array of paragraphs after its header")
    # the sample is cut after its last paragraph (the array is not closed): append, then close the array
    from trec_car.read_data import iter_paragraphs

    with open(shared_data / "collection-samples/trec_car_paragraph_sample.cbor", "rb") as handle:
        in_sample = {paragraph.para_id for paragraph in iter_paragraphs(handle)}  # the mini collection has them too
    added = b"".join(cbor.dumps([0, para_id.encode("ascii"), [[0, text]]]) for para_id, text in sorted(car.items())
                     if para_id not in in_sample)
    return sample + added + b"\xff"


# -- OR-QuAC --------------------------------------------------------------------------------------------------
def _orquac(downloads: Path, shared_data: Path) -> set[str]:
    """OR-QuAC's files from real CANARD dev dialogs: 6 dialogs for train, 2 for dev, 3 for test. Returns the words
    of every text (the tiny BERT vocabulary)."""
    records = json.loads((shared_data / "orquac/canard/dev.json").read_text(encoding="utf-8"))
    dialogs: dict[str, list[dict]] = collections.OrderedDict()
    for record in records:
        dialogs.setdefault(record["QuAC_dialog_id"], []).append(record)
    chosen = [turns for turns in dialogs.values() if len(turns) >= 4][:11]
    splits = {"train": chosen[:6], "dev": chosen[6:8], "test": chosen[8:]}
    blocks, qrels, words = [], {}, set()
    folder = downloads / "orquac" / "preprocessed"
    folder.mkdir(parents=True)
    for split, split_dialogs in splits.items():
        lines = []
        for number, turns in enumerate(split_dialogs):
            turns = sorted(turns, key=lambda record: record["Question_no"])[:-1]  # the last turn's answer is unknown
            title = turns[0]["History"][0]
            article = 1000 * (len(blocks) + 1)
            for index, record in enumerate(turns):
                answer = record_answer(records, record)
                block_id = f"{article}@{index}"
                blocks.append({"id": block_id, "title": title, "text": answer, "aid": str(article), "bid": index})
                qid = f"{record['QuAC_dialog_id']}_q#{record['Question_no'] - 1}"
                qrels[qid] = {block_id: 1}
                history = record["History"][2:]
                lines.append({
                    "qid": qid, "question": record["Question"], "rewrite": record["Rewrite"],
                    "history": [{"question": q, "answer": {"text": a, "answer_start": 0, "bid": 0}}
                                for q, a in zip(history[0::2], history[1::2])],
                    "answer": {"text": answer, "answer_start": 0, "bid": index},
                    "evidences": [answer], "retrieval_labels": [1],
                })
                words |= _words(record["Question"], record["Rewrite"], answer, title, *history)
            blocks.append({"id": f"{article}@{len(turns)}", "title": title, "aid": str(article), "bid": len(turns),
                           "text": f"An unrelated section of {title}, about nothing asked in dialog {number}."})
        (folder / f"{split}.txt").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    _gzip(downloads / "orquac" / "all_blocks.txt.gz", "".join(json.dumps(block) + "\n" for block in blocks))
    _gzip(downloads / "orquac" / "qrels.txt.gz", json.dumps(qrels))
    return words


def record_answer(records: list[dict], record: dict) -> str:
    """The answer to a CANARD question: the last entry of the next question's history in the same dialog."""
    for other in records:
        if other["QuAC_dialog_id"] == record["QuAC_dialog_id"] and other["Question_no"] == record["Question_no"] + 1:
            return other["History"][-1]
    raise AssertionError(f"no next question for {record['QuAC_dialog_id']} #{record['Question_no']}")


def _words(*texts: str) -> set[str]:
    return {word for text in texts for word in re.findall(r"\w+|[^\w\s]", text.lower())}


def _gzip(path: Path, text: str) -> None:
    with gzip.GzipFile(path, "wb", mtime=0) as handle:
        handle.write(text.encode("utf-8"))


# -- checkpoints ----------------------------------------------------------------------------------------------
def _checkpoints(folder: Path, hf_cache: Path, words: set[str]) -> None:
    folder.mkdir(parents=True)
    staging = folder.parent.parent / "checkpoint-staging"
    for seed, (archive, inner, response_token) in enumerate([
            ("Passage_ANCE_FirstP_Checkpoint.zip", "Passage ANCE(FirstP) Checkpoint", False),
            ("convdr-kd-cast19-1.zip", "convdr-kd-cast19-1", False),
            ("convdr-kd-cast20-2.zip", "convdr-kd-cast20-2", True)]):
        model = staging / inner
        vocab = write_tiny_roberta_tokenizer(model, response_token=response_token)
        state = ance_state(len(vocab), dimension=ANCE_DIMENSION, seed=10 + seed,
                           max_position_embeddings=ANCE_POSITIONS)
        write_transformers2_folder(model, state, len(vocab), max_position_embeddings=ANCE_POSITIONS)
        with zipfile.ZipFile(folder / archive, "w") as bundle:
            for path in sorted(model.iterdir()):
                bundle.write(path, f"{inner}/{path.name}")
    vocabulary = BERT_SPECIALS + sorted(words)
    _hub_tokenizer(hf_cache, vocabulary)
    for seed, name in enumerate(("ad-hoc-ance-orquac.cp", "convdr-multi-orquac.cp")):
        _dpr_checkpoint(folder / name, len(vocabulary), seed=20 + seed)


def _hub_tokenizer(hf_cache: Path, vocabulary: list[str]) -> None:
    """`bert-base-uncased` in a Hugging Face hub cache (what a first download leaves behind), with a small vocabulary."""
    repository = hf_cache / "models--bert-base-uncased"
    snapshot = repository / "snapshots" / HUB_REVISION
    snapshot.mkdir(parents=True)
    (repository / "refs").mkdir()
    (repository / "refs" / "main").write_text(HUB_REVISION, encoding="utf-8")
    (snapshot / "vocab.txt").write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    (snapshot / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 512}),
                                                    encoding="utf-8")
    (snapshot / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": len(vocabulary)}),
                                          encoding="utf-8")


def _dpr_checkpoint(path: Path, vocab_size: int, seed: int) -> None:
    """ConvDR's OR-QuAC `.cp`: a DPR CheckpointState dict whose `model_dict` holds two BERT towers."""
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=vocab_size, hidden_size=ANCE_DIMENSION, num_hidden_layers=1, num_attention_heads=12,
                        intermediate_size=64, max_position_embeddings=64, initializer_range=0.2)
    torch.manual_seed(seed)
    model_dict = collections.OrderedDict()
    for prefix in ("question_model.", "ctx_model."):
        model_dict.update((prefix + key, value.clone()) for key, value in BertModel(config).state_dict().items())
    torch.save({"model_dict": model_dict, "optimizer_dict": {}, "scheduler_dict": {}, "offset": 0, "epoch": 1,
                "encoder_params": {"do_lower_case": True, "sequence_length": 256}}, path)
