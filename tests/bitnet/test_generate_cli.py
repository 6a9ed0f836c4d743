"""``bitnet generate`` / ``bitnet chat`` end to end through the CLI entry point, and their bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from bno_bitnet.cli import main
from bno_bitnet.engine import Engine
from bno_bitnet.sampling import GenerationConfig
from bno_bitnet.shapes import build_random_model

TINY = ["--shape", "tiny", "--weights-seed", "1"]


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_json_matches_the_engine(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, ["generate", *TINY, "--prompt", "hello", "--prompt", "hi there",
                                 "--max-new-tokens", "5", "--ignore-eos", "--json"])
    assert code == 0
    data = json.loads(out)
    engine = Engine(build_random_model("tiny", seed=1))
    expected = engine.generate(["hello", "hi there"], GenerationConfig(max_new_tokens=5, stop_at_eos=False))
    assert [r["token_ids"] for r in data["results"]] == [r.token_ids for r in expected]
    assert [r["finish_reason"] for r in data["results"]] == ["length", "length"]
    assert data["stats"]["generated_tokens"] == 10 and data["stats"]["decode_tokens_per_s"] > 0


def test_generate_seeded_sampling_is_reproducible(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["generate", *TINY, "--prompt", "abc", "--max-new-tokens", "8", "--temperature", "1.2",
            "--top-p", "0.9", "--seed", "5", "--ignore-eos", "--json"]
    first = json.loads(_run(capsys, argv)[1])["results"][0]["token_ids"]
    second = json.loads(_run(capsys, argv)[1])["results"][0]["token_ids"]
    other = json.loads(_run(capsys, [*argv[:-3], "6", "--ignore-eos", "--json"])[1])["results"][0]["token_ids"]
    assert first == second and first != other


def test_generate_stream_prints_the_same_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, streamed, err = _run(capsys, ["generate", *TINY, "--prompt", "hey", "--max-new-tokens", "6",
                                        "--ignore-eos", "--stream"])
    assert code == 0 and "decode" in err and "tok/s" in err
    engine = Engine(build_random_model("tiny", seed=1))
    text = engine.generate(["hey"], GenerationConfig(max_new_tokens=6, stop_at_eos=False))[0].text
    assert streamed == text + "\n"


def test_generate_stop_token_and_int8_head(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["generate", *TINY, "--prompt", "hello", "--max-new-tokens", "6", "--ignore-eos", "--json"]
    ids = json.loads(_run(capsys, base)[1])["results"][0]["token_ids"]
    stopped = json.loads(_run(capsys, [*base, "--stop-token-id", str(ids[2])])[1])["results"][0]
    assert stopped["token_ids"] == ids[: ids.index(ids[2]) + 1] and stopped["finish_reason"] == "stop"
    code, out, _ = _run(capsys, [*base, "--int8-head"])
    assert code == 0 and len(json.loads(out)["results"][0]["token_ids"]) == 6


def test_chat_keeps_the_conversation(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n\n/reset\nsecond\n/exit\nnever read\n"))
    code, out, _ = _run(capsys, ["chat", *TINY, "--max-new-tokens", "4", "--ignore-eos"])
    assert code == 0
    assert out.count("bitnet> ") == 2 and "[conversation cleared]" in out
    engine = Engine(build_random_model("tiny", seed=1))
    prompt = engine.tokenizer.apply_chat_template([{"role": "user", "content": "second"}])
    reply = engine.generate([prompt], GenerationConfig(max_new_tokens=4, stop_at_eos=False))[0].text
    assert out.rstrip("\n").endswith("bitnet> " + reply)


def test_chat_drops_old_turns_when_the_context_is_full(capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    long = "x" * 100  # tiny context is 256 byte tokens: three turns do not fit
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{long}\n{long}\n{long}\n{'y' * 300}\n"))
    code, out, _ = _run(capsys, ["chat", *TINY, "--max-new-tokens", "3", "--ignore-eos"])
    assert code == 0 and out.count("bitnet> ") == 3
    assert "longer than the model's context" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate", "--shape", "nope", "--prompt", "x"], "unknown shape 'nope'; known shapes: 2b4t, tiny"),
        (["generate", "--prompt", "x"], "give a MODEL directory or --shape NAME"),
        (["generate", *TINY], "--prompt: give at least one prompt"),
        (["generate", *TINY, "--prompt", "x", "--top-k", "3"], "--top-k/--top-p: only apply when sampling"),
        (["generate", *TINY, "--prompt", "x", "--temperature", "-1"], "--temperature: must be >= 0"),
        (["generate", *TINY, "--prompt", "x", "--max-new-tokens", "0"], "--max-new-tokens: must be >= 1"),
        (["generate", *TINY, "--prompt", "a", "--prompt", "b", "--stream"], "--stream: streams one prompt"),
        (["generate", *TINY, "--prompt", "x", "--threads", "0"], "--threads: must be >= 1"),
        (["generate", *TINY, "--prompt", "x" * 300], "longer than the model's context of 256"),
        (["generate", "--shape", "tiny", "--layers", "0", "--prompt", "x"], "--layers: must be a positive"),
    ],
)
def test_bad_arguments_are_user_errors(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, _, err = _run(capsys, argv)
    assert code == 2
    assert message in err


def test_missing_and_corrupt_model_directories(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _run(capsys, ["generate", str(tmp_path / "absent"), "--prompt", "x"])
    assert code == 2 and "absent: model directory not found" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _run(capsys, ["generate", str(empty), "--prompt", "x"])
    assert code == 2 and "config.json: missing" in err
    from bno_bitnet.hf import save_pretrained

    good = save_pretrained(build_random_model("tiny", seed=1, dtype=torch.float32), tmp_path / "good")
    code, out, _ = _run(capsys, ["generate", str(good), "--prompt", "hi", "--max-new-tokens", "3", "--json",
                                 "--ignore-eos"])
    assert code == 0 and len(json.loads(out)["results"][0]["token_ids"]) == 3
    weights = good / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    code, _, err = _run(capsys, ["generate", str(good), "--prompt", "hi"])
    assert code == 2 and "model.safetensors" in err
    (good / "config.json").write_text('{"vocab_size": 320,\n "hidden_size": }')
    code, _, err = _run(capsys, ["generate", str(good), "--prompt", "hi"])
    assert code == 2 and "config.json" in err


def test_model_directory_with_a_tokenizer_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from tokenizers import Tokenizer as RustTokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    from bno_bitnet.hf import save_pretrained

    model_dir = save_pretrained(build_random_model("tiny", seed=2), tmp_path / "m")
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "hello": 3, "world": 4}
    tok = RustTokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()  # type: ignore[assignment]
    tok.add_special_tokens(["<s>", "</s>"])
    tok.save(str(model_dir / "tokenizer.json"))
    (model_dir / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>"}))
    code, out, _ = _run(capsys, ["generate", str(model_dir), "--prompt", "hello world", "--max-new-tokens", "6",
                                 "--json"])
    assert code == 0
    result = json.loads(out)["results"][0]
    assert result["prompt_tokens"] == 3  # <s> hello world
    assert all(0 <= t < 5 for t in result["token_ids"])  # only ids the tokenizer can decode are sampled
    words = set(result["text"].split())
    assert words <= {"hello", "world", "<unk>"}
    if 2 in result["token_ids"]:
        assert result["finish_reason"] == "stop" and result["token_ids"][-1] == 2


@pytest.mark.parametrize("head", ["int8", "q4"])
def test_head_precision_option(head: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--shape", "tiny", "--prompt", "ab", "--head", head, "--max-new-tokens", "3",
                 "--json"]) == 0
    assert '"finish_reason"' in capsys.readouterr().out
    assert main(["generate", "--shape", "tiny", "--prompt", "ab", "--head", "q4", "--int8-head"]) == 2
    assert "disagree" in capsys.readouterr().err
