# Load on an mcplex deployment as its users make it: MCP sessions in both protocol eras calling tools, chat
# completions (plain, streamed, some cacheable) and conversation turns. Run it headless with
#   npm run loadtest -- --host http://127.0.0.1:7070
# or with Locust itself: /usr/bin/locust -f loadtest/locustfile.py --headless -u 20 -r 20 -t 60s --host URL
#
# Settings (environment): MCPLEX_KEY (an API key, when the deployment needs one), MCPLEX_MODEL (default "mock"),
# MCPLEX_TOOL / MCPLEX_TOOL_ARGS (the tool the MCP users call, default everything__get-sum), MCPLEX_TIMEOUT (seconds,
# default 10), LOADTEST_EVENTS (a file: one JSON line per request) and LOADTEST_ACKS (a file: one JSON line per
# acknowledged conversation write), for scripts that check what happened afterwards.
import json
import os
import random
import threading
import time
import uuid

from locust import HttpUser, between, events, task

KEY = os.environ.get("MCPLEX_KEY", "")
MODEL = os.environ.get("MCPLEX_MODEL", "mock")
TOOL = os.environ.get("MCPLEX_TOOL", "everything__get-sum")
TOOL_ARGS = json.loads(os.environ.get("MCPLEX_TOOL_ARGS", '{"a": 2, "b": 3}'))
TIMEOUT = float(os.environ.get("MCPLEX_TIMEOUT", "10"))
LEGACY = "2025-11-25"
MODERN = "2026-07-28"

_lock = threading.Lock()
_files = {}


def _write(env_name, record):
    path = os.environ.get(env_name)
    if not path:
        return
    with _lock:
        if path not in _files:
            _files[path] = open(path, "a", buffering=1)
        _files[path].write(json.dumps(record) + "\n")


@events.request.add_listener
def _record(request_type, name, response_time, response_length, response=None, exception=None, **_):
    replica = None
    status = None
    if response is not None:
        status = getattr(response, "status_code", None)
        replica = response.headers.get("x-mcplex-replica") if hasattr(response, "headers") else None
    _write(
        "LOADTEST_EVENTS",
        {
            "t": time.time(),
            "type": request_type,
            "name": name,
            "ms": response_time,
            "ok": exception is None,
            "status": status,
            "replica": replica,
            "error": None if exception is None else str(exception)[:300],
        },
    )


def _headers(extra=None):
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if KEY:
        headers["authorization"] = "Bearer " + KEY
    if extra:
        headers.update(extra)
    return headers


def _messages(response):
    """The JSON-RPC messages of an answer: one JSON body, or the data of each SSE event."""
    text = response.text
    if "text/event-stream" not in response.headers.get("content-type", ""):
        return [json.loads(text)] if text else []
    out = []
    for block in text.split("\n\n"):
        data = "\n".join(line[5:].lstrip() for line in block.split("\n") if line.startswith("data:"))
        if data:
            out.append(json.loads(data))
    return out


def _answer(response, request_id):
    for message in _messages(response):
        if message.get("id") == request_id and "method" not in message:
            return message
    return None


class LegacyMcpUser(HttpUser):
    """A 2025-11-25 client: one session (initialize, then calls and lists on it), as desktop clients keep."""

    weight = 3
    wait_time = between(0.05, 0.2)

    def on_start(self):
        self.session = None
        self.next_id = 1
        self.open_session()

    def open_session(self):
        body = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "locust", "version": "1"}},
        }
        with self.client.post("/mcp", json=body, headers=_headers(), name="mcp initialize", timeout=TIMEOUT,
                              catch_response=True) as response:
            self.session = response.headers.get("mcp-session-id")
            if response.status_code != 200 or not self.session:
                response.failure(f"initialize: HTTP {response.status_code}")
                self.session = None
                return
        self.client.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                         headers=self.session_headers(), name="mcp initialized", timeout=TIMEOUT)

    def session_headers(self):
        return _headers({"mcp-session-id": self.session or "", "mcp-protocol-version": LEGACY})

    def rpc(self, method, params, name):
        if not self.session:
            self.open_session()
            return
        self.next_id += 1
        request_id = self.next_id
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        with self.client.post("/mcp", json=body, headers=self.session_headers(), name=name, timeout=TIMEOUT,
                              catch_response=True) as response:
            if response.status_code == 404:
                # The session is gone: that is a failure here (sessions must outlive any one replica).
                response.failure("session not found")
                self.session = None
                return
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return
            answer = _answer(response, request_id)
            if answer is None or "error" in answer:
                response.failure(f"no answer or an error: {json.dumps(answer)[:200]}")

    @task(5)
    def call_tool(self):
        self.rpc("tools/call", {"name": TOOL, "arguments": TOOL_ARGS}, "mcp legacy tools/call")

    @task(1)
    def list_tools(self):
        self.rpc("tools/list", {}, "mcp legacy tools/list")


class ModernMcpUser(HttpUser):
    """A 2026-07-28 client: no session, every request carries its envelope."""

    weight = 2
    wait_time = between(0.05, 0.2)

    @task
    def call_tool(self):
        meta = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "locust", "version": "1"},
        }
        request_id = random.randint(1, 1 << 30)
        body = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                "params": {"name": TOOL, "arguments": TOOL_ARGS, "_meta": meta}}
        headers = _headers({"mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": TOOL})
        with self.client.post("/mcp", json=body, headers=headers, name="mcp modern tools/call", timeout=TIMEOUT,
                              catch_response=True) as response:
            answer = _answer(response, request_id) if response.status_code == 200 else None
            if answer is None or "error" in answer:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")


class ChatUser(HttpUser):
    """An app on the OpenAI-compatible API: plain and streamed chats, some of them identical (cacheable)."""

    weight = 3
    wait_time = between(0.05, 0.2)

    def chat(self, body, name):
        with self.client.post("/v1/chat/completions", json=body, headers=_headers(), name=name, timeout=TIMEOUT,
                              catch_response=True, stream=body.get("stream", False)) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return
            if body.get("stream"):
                text = response.text
                if "[DONE]" not in text:
                    response.failure("the stream ended without [DONE]")

    @task(3)
    def plain(self):
        prompt = f"hello {uuid.uuid4().hex[:8]}"
        self.chat({"model": MODEL, "messages": [{"role": "user", "content": prompt}]}, "v1 chat")

    @task(2)
    def streamed(self):
        prompt = f"stream {uuid.uuid4().hex[:8]}"
        self.chat({"model": MODEL, "stream": True, "messages": [{"role": "user", "content": prompt}]}, "v1 chat stream")

    @task(2)
    def cacheable(self):
        prompt = f"the same question {random.randint(1, 5)}"
        self.chat({"model": MODEL, "temperature": 0, "messages": [{"role": "user", "content": prompt}]},
                  "v1 chat cacheable")


class ConversationUser(HttpUser):
    """A chat app that keeps its conversations in mcplex: turns appended one after another, each acknowledged."""

    weight = 2
    wait_time = between(0.05, 0.2)

    def on_start(self):
        self.conversation = None
        self.version = 0
        with self.client.post("/v1/conversations", json={"metadata": {"by": "locust"}}, headers=_headers(),
                              name="v1 conversation create", timeout=TIMEOUT, catch_response=True) as response:
            if response.status_code == 200:
                self.conversation = response.json()["id"]
            else:
                response.failure(f"HTTP {response.status_code}")

    @task(2)
    def turn(self):
        if not self.conversation:
            return self.on_start()
        body = {"model": MODEL, "conversation": self.conversation,
                "messages": [{"role": "user", "content": f"turn {uuid.uuid4().hex[:8]}"}]}
        with self.client.post("/v1/chat/completions", json=body, headers=_headers(), name="v1 conversation turn",
                              timeout=TIMEOUT, catch_response=True) as response:
            if response.status_code == 200:
                version = (response.json().get("conversation") or {}).get("version")
                _write("LOADTEST_ACKS", {"conversation": self.conversation, "version": version, "kind": "turn"})
            elif response.status_code != 409:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")

    @task(1)
    def append(self):
        if not self.conversation:
            return self.on_start()
        body = {"items": [{"role": "user", "content": f"note {uuid.uuid4().hex[:8]}"}]}
        with self.client.post(f"/v1/conversations/{self.conversation}/items", json=body, headers=_headers(),
                              name="v1 conversation append", timeout=TIMEOUT, catch_response=True) as response:
            if response.status_code == 200:
                answer = response.json()
                _write("LOADTEST_ACKS", {"conversation": self.conversation, "version": answer.get("version"),
                                         "items": [item["id"] for item in answer.get("data", [])], "kind": "append"})
            else:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
