"""``bitnet serve``: the OpenAI API driven by the official ``openai`` client, SSE at the HTTP level, limits,
continuous batching (16 concurrent greedy streams equal their sequential outputs), cancel and shutdown."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
import torch
from openai.types.chat import ChatCompletionMessageParam

from bno_bitnet.engine import Engine
from bno_bitnet.sampling import GenerationConfig
from bno_bitnet.server.app import Limits
from bno_bitnet.server.runner import Server
from bno_bitnet.server.scheduler import BatchScheduler, Event, Request
from bno_bitnet.shapes import build_random_model
from bno_bitnet.tokenizer import ByteTokenizer, HFTokenizer

MODEL = "tiny-bitnet"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """A tiny random model served on 127.0.0.1 (a free port) for the module's tests."""
    model = build_random_model("tiny", seed=7)
    srv = Server(model, ByteTokenizer(), model_name=MODEL, max_batch=16, max_queue=64,
                 limits=Limits(max_body_bytes=64 * 1024, max_tokens=200, timeout_s=60.0))
    with srv.running(join_timeout=30) as thread:
        yield srv
    assert not thread.is_alive(), "the server thread must end on stop"


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key="not-needed", max_retries=0, timeout=60)


def test_models_list(client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert client.models.retrieve(MODEL).owned_by == "bitnet-orchestrator"


def test_chat_completion_matches_the_engine(client: openai.OpenAI, server: Server) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": "be brief"},
                                                  {"role": "user", "content": "hello there"}]
    reply = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=12, temperature=0)
    tokenizer = ByteTokenizer()
    plain_messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
    prompt = tokenizer.encode(tokenizer.apply_chat_template(plain_messages), add_bos=True)
    expected = Engine(server.scheduler.model, tokenizer).generate(
        [prompt], GenerationConfig(max_new_tokens=12, temperature=0.0))[0]
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == expected.text
    assert reply.choices[0].finish_reason == ("stop" if expected.finish_reason == "stop" else "length")
    assert reply.usage is not None and reply.usage.prompt_tokens == len(prompt)
    assert reply.usage.completion_tokens == len(expected.token_ids)
    assert reply.usage.total_tokens == len(prompt) + len(expected.token_ids)


def test_streamed_chat_equals_the_plain_reply(client: openai.OpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "stream me"}]
    plain = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=20, temperature=0)
    chunks = list(client.chat.completions.create(model=MODEL, messages=messages, max_tokens=20, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [plain.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens  # type: ignore[union-attr]


def test_completions_text_and_token_prompts(client: openai.OpenAI) -> None:
    by_text = client.completions.create(model=MODEL, prompt="abc", max_tokens=6, temperature=0)
    ids = [ByteTokenizer().bos_token_id or 0, *b"abc"]
    by_ids = client.completions.create(model=MODEL, prompt=ids, max_tokens=6, temperature=0)
    assert by_text.choices[0].text == by_ids.choices[0].text
    assert by_text.usage is not None and by_text.usage.prompt_tokens == 4
    streamed = client.completions.create(model=MODEL, prompt="abc", max_tokens=6, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in streamed) == by_text.choices[0].text


def test_seeded_sampling_repeats(client: openai.OpenAI) -> None:
    runs = [client.completions.create(model=MODEL, prompt="seed", max_tokens=10, temperature=0.9, top_p=0.95,
                                      seed=42).choices[0].text for _ in range(2)]
    assert runs[0] == runs[1]


def test_stop_sequences_end_the_text(client: openai.OpenAI) -> None:
    full = client.completions.create(model=MODEL, prompt="xyz", max_tokens=30, temperature=0).choices[0].text
    assert len(full) > 3
    stop = full[2:4]
    cut = client.completions.create(model=MODEL, prompt="xyz", max_tokens=30, temperature=0, stop=[stop])
    assert cut.choices[0].text == full[: full.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    streamed = client.completions.create(model=MODEL, prompt="xyz", max_tokens=30, temperature=0, stop=stop,
                                         stream=True)
    assert "".join(c.choices[0].text for c in streamed) == cut.choices[0].text


def test_bad_requests_get_openai_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.completions.create(model="gpt-4o", prompt="a")
    with pytest.raises(openai.BadRequestError, match="at most 200") as info:
        client.completions.create(model=MODEL, prompt="a", max_tokens=500)
    assert info.value.param == "max_tokens" if hasattr(info.value, "param") else True
    with pytest.raises(openai.BadRequestError, match="context"):
        client.completions.create(model=MODEL, prompt="a" * 250, max_tokens=100)
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.completions.create(model=MODEL, prompt="a", temperature=5)
    with pytest.raises(openai.BadRequestError, match="only n=1"):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "a"}], n=2)
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model=MODEL, messages=[])
    with pytest.raises(openai.BadRequestError, match="outside the vocabulary"):
        client.completions.create(model=MODEL, prompt=[1, 2, 10**6])


def _http(server: Server, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP/1.1 exchange with the server (stdlib client: what goes over the wire, unparsed)."""
    host, port = server.socket.getsockname()[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"content-type": "application/json"})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_raw_http_errors_and_sse_framing(server: Server) -> None:
    status, _, raw = _http(server, "POST", "/v1/completions", b"{not json")
    assert status == 400
    error = json.loads(raw)["error"]
    assert error["type"] == "invalid_request_error" and "not valid JSON" in error["message"]
    status, _, raw = _http(server, "POST", "/v1/completions", json.dumps({"model": MODEL}).encode())
    assert status == 400 and json.loads(raw)["error"]["param"] == "prompt"
    status, _, raw = _http(server, "POST", "/v1/completions", json.dumps({"model": MODEL, "prompt": "a" * 100_000}).encode())
    assert status == 413 and "limit" in json.loads(raw)["error"]["message"]
    status, _, raw = _http(server, "GET", "/v1/nothing-here")
    assert status == 404 and "error" in json.loads(raw)
    body = {"model": MODEL, "prompt": "sse", "max_tokens": 5, "temperature": 0, "stream": True}
    status, headers, raw = _http(server, "POST", "/v1/completions", json.dumps(body).encode())
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = raw.decode().split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    docs = [json.loads(e[len("data: "):]) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-1])
    assert all(d["object"] == "text_completion" for d in docs)
    assert docs[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_markup_and_template_syntax_in_user_text_is_data(client: openai.OpenAI, server: Server) -> None:
    text = "{{ 7*7 }} {% if true %}x{% endif %} [b]y[/b] $(rm -rf /)"
    reply = client.completions.create(model=MODEL, prompt=text, max_tokens=4, temperature=0)
    assert reply.usage is not None and reply.usage.prompt_tokens == len(text.encode()) + 1  # bytes + BOS


def test_sixteen_concurrent_streams_equal_their_sequential_outputs(server: Server) -> None:
    """Continuous batching: every stream completes, token for token what the prompt gives alone."""
    prompts = [f"prompt number {i}: " + "z" * (3 * i) for i in range(16)]
    max_tokens = [8 + (5 * i) % 23 for i in range(16)]

    def run(i: int) -> tuple[str, str | None]:
        cli = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=120)
        stream = cli.completions.create(model=MODEL, prompt=prompts[i], max_tokens=max_tokens[i], temperature=0,
                                        stream=True)
        text, finish = "", None
        for chunk in stream:
            text += chunk.choices[0].text
            finish = chunk.choices[0].finish_reason or finish
        return text, finish

    sequential = [run(i) for i in range(16)]
    before = server.scheduler.stats.max_rows_in_step
    server.scheduler.stats.max_rows_in_step = 0
    with ThreadPoolExecutor(max_workers=16) as pool:
        concurrent = list(pool.map(run, range(16)))
    assert concurrent == sequential
    assert all(finish in ("stop", "length") for _, finish in concurrent)
    assert server.scheduler.stats.max_rows_in_step > 1, "the requests must have shared decode steps"
    server.scheduler.stats.max_rows_in_step = max(before, server.scheduler.stats.max_rows_in_step)


def test_chat_template_from_tokenizer_config(tmp_path: Path) -> None:
    from tokenizers import Tokenizer as RustTokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "[": 3, "]": 4, "user": 5, "assistant": 6, "hello": 7, "world": 8}
    tok = RustTokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()
    tok.add_special_tokens(["<s>", "</s>"])
    tok.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<s>", "eos_token": "</s>",
        "chat_template": "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }} "
                         "{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}",
    }))
    tokenizer = HFTokenizer.from_dir(tmp_path)
    srv = Server(build_random_model("tiny", seed=1), tokenizer, model_name="t")
    with srv.running(join_timeout=30):
        cli = openai.OpenAI(base_url=srv.url, api_key="x", max_retries=0)
        reply = cli.chat.completions.create(model="t", messages=[{"role": "user", "content": "hello world"}],
                                            max_tokens=3, temperature=0)
        # <s> [ user ] hello world [ assistant ]: the template's 9 tokens, none unknown, BOS not doubled
        assert reply.usage is not None and reply.usage.prompt_tokens == 9
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": "hello world"}])
        assert 0 not in tokenizer.encode(rendered, add_bos=True)


def test_scheduler_cancel_and_stop_end_every_request() -> None:
    model = build_random_model("tiny", seed=2)
    scheduler = BatchScheduler(model, ByteTokenizer(), max_batch=4, max_queue=2)
    events: dict[str, list[Event]] = {"a": [], "b": []}
    done = threading.Event()

    def deliver_a(event: Event) -> None:
        events["a"].append(event)
        if len(events["a"]) == 1:
            request_a.cancel()  # on the scheduler thread: seen before the next step
        if event.finish is not None:
            done.set()

    request_a = Request(prompt_ids=[1, 2, 3], max_tokens=200, deliver=deliver_a)
    scheduler.start()
    try:
        scheduler.submit(request_a)
        assert done.wait(30)
        assert events["a"][-1].finish == "cancelled"
        assert events["a"][-1].completion_tokens < 200
        deadline = time.monotonic() + 30
        while scheduler.busy() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert scheduler.busy() == 0, "a cancelled row leaves the batch"
    finally:
        scheduler.stop()
    with pytest.raises(Exception, match="shutting down"):
        scheduler.submit(Request(prompt_ids=[1], max_tokens=1, deliver=events["b"].append))


def test_batch_cache_join_shift_and_compact_keep_each_rows_tokens() -> None:
    """A row joining with a longer prompt, rows leaving, compaction: greedy tokens stay those of each alone."""
    model = build_random_model("tiny", seed=5)
    engine = Engine(model, ByteTokenizer(), add_bos=False)
    prompts = [[5, 6, 7], list(range(10, 60)), [70, 71, 72, 73, 74, 75, 76, 77]]
    config = GenerationConfig(max_new_tokens=40, temperature=0.0, stop_at_eos=False)
    alone = [engine.generate([p], config)[0].token_ids for p in prompts]
    scheduler = BatchScheduler(model, ByteTokenizer(), max_batch=3, max_queue=8)
    scheduler.eos = set()  # as stop_at_eos=False
    got: list[list[int]] = [[], [], []]
    finished = threading.Semaphore(0)

    def collector(i: int) -> Callable[[Event], None]:
        def deliver(event: Event) -> None:
            if event.token_id is not None:
                got[i].append(event.token_id)
            if event.finish is not None:
                finished.release()
        return deliver

    scheduler.start()
    try:
        for i, p in enumerate(prompts):
            scheduler.submit(Request(prompt_ids=p, max_tokens=40 - 5 * i, deliver=collector(i)))
            time.sleep(0.01)
        for _ in prompts:
            assert finished.acquire(timeout=60)
    finally:
        scheduler.stop()
    # token ids are reported with each text piece: the byte tokenizer gives one piece per token
    for i in range(3):
        assert got[i] == alone[i][: 40 - 5 * i]


def test_cli_serves_and_shuts_down_gracefully_on_sigterm() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "bno_bitnet.cli", "serve", "--shape", "tiny", "--port", "0",
                             "--grace", "5", "--threads", "1"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            env=env, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "serving at http://127.0.0.1:" in line, line
        url = line.split("serving at ", 1)[1].split()[0]
        cli = openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=60)
        assert [m.id for m in cli.models.list().data] == ["bitnet-tiny"]
        stream = cli.completions.create(model="bitnet-tiny", prompt="go", max_tokens=150, temperature=0,
                                        stream=True)
        first = next(iter(stream))
        proc.send_signal(signal.SIGTERM)
        rest = list(stream)  # the running stream is not cut off: it ends with its finish reason
        assert first.choices[0].text is not None
        assert rest and rest[-1].choices[0].finish_reason in ("stop", "length")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def test_cli_refuses_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    from bno_bitnet.cli import main

    assert main(["serve", "--shape", "tiny", "--max-batch", "0"]) == 2
    assert "--max-batch" in capsys.readouterr().err
    assert main(["serve", "--shape", "tiny", "--port", "70000"]) == 2
    assert torch.get_num_threads() >= 1


def test_bench_serve_reports_aggregate_against_one_stream(capsys: pytest.CaptureFixture[str]) -> None:
    from bno_bitnet.cli import main

    assert main(["bench", "serve", "--shape", "tiny", "--threads", "1", "--streams", "4", "--tokens", "8",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["streams"] == 4 and result["identical_to_sequential"] is True and result["all_complete"] is True
    assert result["single_stream_tokens_per_s"] > 0 and result["aggregate_tokens_per_s"] > 0
    assert result["aggregate_vs_single"] == pytest.approx(
        result["aggregate_tokens_per_s"] / result["single_stream_tokens_per_s"])
