"""Checkpoints a user can actually get: the ANCE card from Pyserini's hub copy by name and from a local folder,
sentence-transformers ports read as their own configuration says (or refused), and the sha256 of weights without a
published checksum recorded at their first use and checked from then on."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from convdr_pyserini.encode import load_encoder, resolve_card
from convdr_pyserini.encode.cards import check_weights_checksum
from convdr_pyserini.errors import UserError
from test_convdr_inputs import write_tiny_roberta_tokenizer
from test_encode import TEXTS, ance_state, lowercase_ids, reference_ance, tiny_roberta_config

HUB_REVISION = "1" * 40


def write_hub_snapshot(hub_cache: Path, repository: str, state: dict, vocab_size: int) -> Path:
    """What `huggingface_hub.snapshot_download(repository)` leaves in its cache: Pyserini's AnceEncoder layout."""
    from safetensors.torch import save_file

    folder = hub_cache / f"models--{repository.replace('/', '--')}"
    snapshot = folder / "snapshots" / HUB_REVISION
    write_tiny_roberta_tokenizer(snapshot)
    config = tiny_roberta_config(vocab_size)
    config.architectures = ["AnceEncoder"]
    config.save_pretrained(str(snapshot))
    save_file({key: value.contiguous() for key, value in state.items() if not key.startswith("classifier.")},
              str(snapshot / "model.safetensors"))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(HUB_REVISION, encoding="utf-8")
    return snapshot


def test_the_ance_card_loads_pyserinis_hub_copy_by_name(tmp_path):
    """No original zip in the mirror or cache: the card takes `castorini/ance-msmarco-passage` from the hub's cache
    (offline), with the card's settings (lower-casing, first token + Linear + LayerNorm)."""
    vocab = write_tiny_roberta_tokenizer(tmp_path / "vocab")
    state = ance_state(len(vocab), dimension=768, seed=5)
    write_hub_snapshot(tmp_path / "hf" / "hub", "castorini/ance-msmarco-passage", state, len(vocab))
    program = ("import json, sys; from convdr_pyserini.encode import load_encoder; "
               "e = load_encoder('ance-msmarco-passage'); "
               f"print(json.dumps({{'lowercase': e.card.lowercase, 'location': str(e.card.weights_location()), "
               f"'vectors': e.encode_passages({TEXTS!r}).tolist()}}))")
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1",
           "CONVDR_PYSERINI_HOME": str(tmp_path / "home"), "CONVDR_PYSERINI_MIRROR": str(tmp_path / "empty-mirror")}
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["lowercase"] and HUB_REVISION in result["location"]
    from transformers import RobertaTokenizer

    tokenizer = RobertaTokenizer.from_pretrained(str(tmp_path / "vocab"))
    expected = reference_ance(state, len(vocab), lowercase_ids(tokenizer, TEXTS, 64))
    np.testing.assert_allclose(np.array(result["vectors"]), expected, atol=2e-5, rtol=1e-4)
    # without the hub's copy and without the original zip: one line saying both ways
    env.update(HF_HOME=str(tmp_path / "no-hub"), CONVDR_PYSERINI_MIRROR=os.environ["CONVDR_PYSERINI_MIRROR"])
    done = subprocess.run([sys.executable, "-m", "convdr_pyserini.index", "dense", "--collection", "convdr/cast20/mini",
                           "--encoder", "ance-msmarco-passage", "--output", str(tmp_path / "index")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "cannot get castorini/ance-msmarco-passage from the Hugging Face hub" in done.stderr
    assert "Passage_ANCE_FirstP_Checkpoint.zip" in done.stderr


def test_a_local_copy_of_the_original_checkpoint_reads_as_the_card_does(tmp_path):
    """The original zip's folder (transformers 2.x layout), given as a folder, gets the card's settings inferred."""
    from test_encode import write_transformers2_folder

    folder = tmp_path / "Passage ANCE(FirstP) Checkpoint"
    vocab = write_tiny_roberta_tokenizer(folder)
    state = ance_state(len(vocab), dimension=768, seed=6)
    write_transformers2_folder(folder, state, len(vocab))
    card, local = resolve_card("ance-msmarco-passage"), load_encoder(str(folder)).card
    assert (local.architecture, local.lowercase, local.truncate, local.normalize) == \
        (card.architecture, card.lowercase, card.truncate, card.normalize)


def sentence_transformer_port(folder: Path, pooling: str, head: bool, activation=None) -> tuple[object, Path]:
    """A sentence-transformers model over a tiny RoBERTa: `pooling` ("cls" or "mean"), optionally ANCE's head."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import RobertaModel, RobertaTokenizer

    backbone = folder.parent / f"{folder.name}-backbone"
    vocab = write_tiny_roberta_tokenizer(backbone)
    torch.manual_seed(7)
    RobertaModel(tiny_roberta_config(len(vocab)), add_pooling_layer=False).save_pretrained(str(backbone))
    RobertaTokenizer.from_pretrained(str(backbone)).save_pretrained(str(backbone))
    transformer = models.Transformer(str(backbone), max_seq_length=64, do_lower_case=True)
    modules = [transformer, models.Pooling(32, pooling_mode=pooling)]
    if head:
        modules += [models.Dense(32, 16, activation_function=activation or torch.nn.Identity()), models.LayerNorm(16)]
    model = SentenceTransformer(modules=modules, device="cpu")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    model.save(str(folder))
    return model, folder


def test_a_sentence_transformers_ance_port_is_read_with_its_head(tmp_path):
    model, folder = sentence_transformer_port(tmp_path / "ance-port", "cls", head=True)
    card = resolve_card(str(folder))
    assert card.architecture == "rdot_nll" and card.dimension is None  # lower-casing: in its tokenizer (ST 6)
    encoder = load_encoder(str(folder))
    assert encoder.dim == 16
    expected = model.encode(TEXTS, convert_to_numpy=True)
    np.testing.assert_allclose(encoder.encode_passages(TEXTS), expected, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("pooling,head,activation", [("cls", False, None), ("mean", True, None),
                                                     ("cls", True, torch.nn.Tanh())])
def test_other_sentence_transformers_heads_are_refused_not_mean_pooled(tmp_path, pooling, head, activation):
    _, folder = sentence_transformer_port(tmp_path / "port", pooling, head, activation)
    with pytest.raises(UserError, match="is not supported; this package reads mean pooling"):
        resolve_card(str(folder))


def test_a_mean_pooled_sentence_transformer_stays_mean_pooled(tmp_path):
    model, folder = sentence_transformer_port(tmp_path / "mean", "mean", head=False)
    encoder = load_encoder(str(folder))
    assert encoder.card.architecture == "mean"
    np.testing.assert_allclose(encoder.encode_passages(TEXTS), model.encode(TEXTS), atol=2e-5, rtol=1e-4)


def test_weights_without_a_published_sha256_are_recorded_then_checked(tmp_path, monkeypatch, caplog):
    import logging

    monkeypatch.setenv("CONVDR_PYSERINI_HOME", str(tmp_path / "home"))
    weights = tmp_path / "model.cp"
    weights.write_bytes(b"first download")
    with caplog.at_level(logging.WARNING, logger="convdr_pyserini"):
        check_weights_checksum("some-card", weights, None)
        check_weights_checksum("some-card", weights, None)
    record = tmp_path / "home/encoders/some-card/model.cp.sha256"
    assert record.read_text(encoding="utf-8").split()[0] == __import__("hashlib").sha256(b"first download").hexdigest()
    assert caplog.text.count("no published sha256 for model.cp; recorded") == 1  # the first use only
    weights.write_bytes(b"another file")
    with pytest.raises(UserError, match="but its first use recorded"):
        check_weights_checksum("some-card", weights, None)
    with pytest.raises(UserError, match="but encoder card some-card says 00"):
        check_weights_checksum("some-card", weights, "00" * 32)


def test_a_released_checkpoint_is_taken_from_the_mirror_and_unpacked_once(tmp_path, monkeypatch):
    """The card `convdr-kd-cast19`: its zip under the data mirror (no download), unpacked into the cache."""
    import zipfile

    from test_encode import write_transformers2_folder

    model = tmp_path / "convdr-kd-cast19-1"
    vocab = write_tiny_roberta_tokenizer(model)
    write_transformers2_folder(model, ance_state(len(vocab), dimension=768, seed=8), len(vocab))
    mirror = tmp_path / "mirror"
    (mirror / "checkpoints").mkdir(parents=True)
    with zipfile.ZipFile(mirror / "checkpoints" / "convdr-kd-cast19-1.zip", "w") as bundle:
        for path in sorted(model.iterdir()):
            bundle.write(path, f"convdr-kd-cast19-1/{path.name}")
    monkeypatch.setenv("CONVDR_PYSERINI_MIRROR", str(mirror))
    monkeypatch.setenv("CONVDR_PYSERINI_HOME", str(tmp_path / "home"))
    location = resolve_card("convdr-kd-cast19").weights_location()
    assert location == tmp_path / "home/encoders/convdr-kd-cast19/unpacked/convdr-kd-cast19-1"
    assert (mirror / "checkpoints" / "convdr-kd-cast19-1.zip").is_file()  # the mirror is never changed
    assert load_encoder("convdr-kd-cast19").dim == 768
