"""A fake Gemini upstream speaking the Generative Language API v1beta wire format.

Routes (all POST): `/v1beta/models/{model}:generateContent`, `:streamGenerateContent` (with
`alt=sse` every response is one `data: {...}\\r\\n\\r\\n` event; without it, a JSON array, as Google
does) and `:batchEmbedContents` (at most 100 requests per call, like Google).

Like Google it authenticates the `x-goog-api-key` header (missing: 403 PERMISSION_DENIED; wrong:
400 INVALID_ARGUMENT "API key not valid"), rejects unknown JSON field names with 400
INVALID_ARGUMENT, and answers errors as `{"error": {"code", "message", "status", "details"}}`.
Every request is recorded (path with query, headers, body) before anything else happens.

Behaviour by model (response shapes follow Google's documented examples):
- `gemini-text`: a three-event answer; honours `candidateCount` (one candidate per count).
- `gemini-tools`: three parallel function calls (the docs' disco-party example), the first with a
  thought signature; streamed as one call, then two.
- `gemini-length`: stops with MAX_TOKENS. `gemini-safety`: a candidate blocked with SAFETY.
- `gemini-blocked`: the prompt itself blocked (`promptFeedback.blockReason`, no candidates).
- `gemini-thinking`: a thought-summary part, then the answer; usage with cached and thought tokens.
- `gemini-unicode`: emoji, CJK and flags, each SSE event written in two pieces split inside a
  multi-byte character.
- `gemini-cut`: two text events, then a clean end of the response with no finishReason.
- `gemini-drop`: one text event, then the connection is dropped mid-response.
- `gemini-malformed`: one text event, then an event whose data is not JSON.
- `gemini-error-mid`: one text event, then an error event whose message contains the API key
  (a hostile upstream, to prove redaction).
- `gemini-429`: 429 RESOURCE_EXHAUSTED with `Retry-After: 7` and a RetryInfo detail.
- `gemini-403`: 403 PERMISSION_DENIED whose message contains the API key.
- `gemini-slow`: streams one event every 20 ms for 10 s; records when the client hangs up.
- `text-embedding-004`, `gemini-embedding-001`: the vector of a text ending in `#N` is
  `fake_embedding(N)`, of any other text `fake_embedding(its position in the batch)`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

API_KEY = "AIzaSyFake-Gemini-Key-0123456789abcdefXYZ"
MODEL_VERSION = "gemini-2.5-flash"
SIGNATURE = "CiQB0e2Kb7jR1o2fYx8mRZ0aGVtaW5pLXRob3VnaHQtc2lnbmF0dXJlLWZha2U="
TEXT_CHUNKS = ("AI learns patterns", " from data, then uses them", " to predict. ✨")
UNICODE_CHUNKS = ("Grüße aus Zürich 👋🏽 ", "日本語のテキスト", " and 🇫🇷 flags.")
EMBEDDING_MODELS = frozenset({"text-embedding-004", "gemini-embedding-001"})

# The fields of each request message Google's JSON parser knows: anything else is a 400.
SCHEMA: dict[str, dict[str, str | None]] = {
    "GenerateContentRequest": {
        "model": None,
        "contents": "Content[]",
        "tools": "Tool[]",
        "toolConfig": "ToolConfig",
        "safetySettings": None,
        "systemInstruction": "Content",
        "generationConfig": "GenerationConfig",
        "cachedContent": None,
    },
    "Content": {"role": None, "parts": "Part[]"},
    "Part": {
        "text": None,
        "inlineData": "Blob",
        "fileData": "FileData",
        "functionCall": "FunctionCall",
        "functionResponse": "FunctionResponse",
        "executableCode": None,
        "codeExecutionResult": None,
        "thought": None,
        "thoughtSignature": None,
        "videoMetadata": None,
        "partMetadata": None,
    },
    "Blob": {"mimeType": None, "data": None},
    "FileData": {"mimeType": None, "fileUri": None},
    "FunctionCall": {"id": None, "name": None, "args": None},
    "FunctionResponse": {
        "id": None,
        "name": None,
        "response": None,
        "willContinue": None,
        "scheduling": None,
        "parts": None,
    },
    "Tool": {
        "functionDeclarations": "FunctionDeclaration[]",
        "googleSearchRetrieval": None,
        "codeExecution": None,
        "googleSearch": None,
        "urlContext": None,
        "computerUse": None,
        "fileSearch": None,
        "googleMaps": None,
    },
    "FunctionDeclaration": {
        "name": None,
        "description": None,
        "behavior": None,
        "parameters": None,
        "parametersJsonSchema": None,
        "response": None,
        "responseJsonSchema": None,
    },
    "ToolConfig": {"functionCallingConfig": "FunctionCallingConfig", "retrievalConfig": None},
    "FunctionCallingConfig": {"mode": None, "allowedFunctionNames": None},
    "GenerationConfig": {
        "stopSequences": None,
        "responseMimeType": None,
        "responseSchema": None,
        "responseJsonSchema": None,
        "responseModalities": None,
        "candidateCount": None,
        "maxOutputTokens": None,
        "temperature": None,
        "topP": None,
        "topK": None,
        "seed": None,
        "presencePenalty": None,
        "frequencyPenalty": None,
        "responseLogprobs": None,
        "logprobs": None,
        "enableEnhancedCivicAnswers": None,
        "speechConfig": None,
        "thinkingConfig": "ThinkingConfig",
        "imageConfig": None,
        "mediaResolution": None,
    },
    "ThinkingConfig": {"includeThoughts": None, "thinkingBudget": None, "thinkingLevel": None},
    "BatchEmbedContentsRequest": {"requests": "EmbedContentRequest[]"},
    "EmbedContentRequest": {
        "model": None,
        "content": "Content",
        "taskType": None,
        "title": None,
        "outputDimensionality": None,
    },
}


class GoogleError(Exception):
    """An error answered in Google's envelope."""

    STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}

    def __init__(self, code: int, message: str, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []

    def response(self, status: str | None = None) -> web.Response:
        """The HTTP response for this error."""
        error = {
            "code": self.code,
            "message": self.message,
            "status": status or self.STATUS.get(self.code, "UNKNOWN"),
        }
        if self.details:
            error["details"] = self.details
        return web.json_response({"error": error}, status=self.code)


@dataclass
class Seen:
    """One request as the fake received it."""

    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Recorder:
    """What the fake saw."""

    requests: list[Seen] = field(default_factory=list)
    closed_at: dict[int, float] = field(default_factory=dict)

    @property
    def last(self) -> Seen:
        """The most recent request."""
        return self.requests[-1]


def fake_embedding(index: int, dimensions: int = 4) -> list[float]:
    """The vector the fake returns for the `index`-th text (exact in float32)."""
    return [(index + 1) * 0.5] + [(-1) ** k * 2.0 ** -(k + 1) for k in range(dimensions - 1)]


def text_number(text: str, default: int) -> int:
    """N for a text ending in `#N`, else `default` (the text's position in its batch)."""
    _, sep, tail = text.rpartition("#")
    return int(tail) if sep and tail.isdigit() else default


def check_fields(value: Any, message: str, where: str = "") -> None:
    """Raise Google's "Unknown name" 400 for any field `message` does not have."""
    if message.endswith("[]"):
        for item in value if isinstance(value, list) else []:
            check_fields(item, message[:-2], where)
        return
    if not isinstance(value, dict):
        return
    fields = SCHEMA[message]
    for name, sub in value.items():
        if name not in fields:
            raise GoogleError(
                400,
                f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': "
                "Cannot find field.",
            )
        if fields[name] is not None:
            check_fields(sub, str(fields[name]), f"{where}.{name}".strip("."))


def check_content(content: Any, where: str, roles: frozenset[str]) -> None:
    """Gemini's rules for a Content: a known role, non-empty parts, no empty text."""
    if not isinstance(content, dict) or content.get("role", "user") not in roles:
        raise GoogleError(400, f"Please use a valid role: user, model. ({where})")
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise GoogleError(400, f"* {where}.parts: contents.parts must not be empty.")
    for part in parts:
        if isinstance(part, dict) and part.get("text") == "":
            raise GoogleError(
                400, "Unable to submit request because it has an empty text parameter."
            )


def check_generate(body: Any) -> None:
    """Validate a GenerateContentRequest the way the API does."""
    check_fields(body, "GenerateContentRequest")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise GoogleError(400, "* GenerateContentRequest.contents: contents is not specified")
    for i, content in enumerate(contents):
        check_content(content, f"contents[{i}]", frozenset({"user", "model"}))
    if "systemInstruction" in body:
        check_content(body["systemInstruction"], "system_instruction", frozenset({"user"}))
    for tool in body.get("tools") or []:
        for declaration in tool.get("functionDeclarations") or []:
            if "parameters" in declaration and "parametersJsonSchema" in declaration:
                raise GoogleError(400, "parameters and parametersJsonSchema are mutually exclusive")
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    if calling.get("mode", "AUTO") not in {"AUTO", "ANY", "NONE", "VALIDATED"}:
        raise GoogleError(400, "Invalid value at 'tool_config.function_calling_config.mode'")
    if calling.get("allowedFunctionNames") and calling.get("mode") not in {"ANY", "VALIDATED"}:
        raise GoogleError(400, "allowed_function_names may only be set with mode ANY")
    config = body.get("generationConfig") or {}
    if "responseJsonSchema" in config and config.get("responseMimeType") != "application/json":
        raise GoogleError(400, "responseJsonSchema requires responseMimeType application/json")


def _usage(prompt: int, candidates: int, **extra: Any) -> dict[str, Any]:
    total = prompt + candidates + int(extra.get("thoughtsTokenCount", 0))
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": total,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    usage.update(extra)
    return usage


def _event(parts: list[dict[str, Any]] | None, **candidate: Any) -> dict[str, Any]:
    """One streamed GenerateContentResponse with a single candidate."""
    usage = candidate.pop("usage", {"promptTokenCount": 8, "totalTokenCount": 8})
    body: dict[str, Any] = {"candidates": [candidate], "usageMetadata": usage}
    if parts is not None:
        candidate["content"] = {"parts": parts, "role": "model"}
    body["modelVersion"] = MODEL_VERSION
    body["responseId"] = "mN4TaLrFJo2bz7IP5tiR0Qk"
    return body


def _text_script(chunks: tuple[str, ...], count: int, finish: str = "STOP") -> list[dict[str, Any]]:
    events = []
    for n, text in enumerate(chunks):
        candidates = []
        for index in range(count):
            variant = f"(variant {index}) " if index and n == 0 else ""
            parts = [{"text": variant + text}]
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
            if index:
                candidate["index"] = index  # proto3 JSON leaves index 0 out
            if n == len(chunks) - 1:
                candidate["finishReason"] = finish
            candidates.append(candidate)
        last = n == len(chunks) - 1
        usage = _usage(8, 12 * count) if last else {"promptTokenCount": 8, "totalTokenCount": 8}
        events.append(
            {
                "candidates": candidates,
                "usageMetadata": usage,
                "modelVersion": MODEL_VERSION,
                "responseId": "mN4TaLrFJo2bz7IP5tiR0Qk",
            }
        )
    return events


def script(model: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The streamed events for `model`; the non-streaming answer is their merge."""
    count = int((body.get("generationConfig") or {}).get("candidateCount") or 1)
    if model in {
        "gemini-text",
        "gemini-cut",
        "gemini-drop",
        "gemini-error-mid",
        "gemini-malformed",
        "gemini-slow",
    }:
        return _text_script(TEXT_CHUNKS, count)
    if model == "gemini-unicode":
        return _text_script(UNICODE_CHUNKS, 1)
    if model == "gemini-length":
        return _text_script(("The history of the Roman", " Empire spans"), 1, "MAX_TOKENS")
    if model == "gemini-tools":
        first: dict[str, Any] = {
            "functionCall": {"name": "power_disco_ball", "args": {"power": True}}
        }
        first["thoughtSignature"] = SIGNATURE
        rest = [
            {"functionCall": {"name": "start_music", "args": {"energetic": True, "loud": True}}},
            {"functionCall": {"name": "dim_lights", "args": {"brightness": 0.5}}},
        ]
        return [_event([first]), _event(rest, finishReason="STOP", usage=_usage(96, 40))]
    if model == "gemini-safety":
        ratings = [
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
        ]
        return [_event(None, finishReason="SAFETY", index=0, safetyRatings=ratings)]
    if model == "gemini-blocked":
        feedback = {
            "blockReason": "SAFETY",
            "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH"}],
        }
        usage = {"promptTokenCount": 9, "totalTokenCount": 9}
        return [{"promptFeedback": feedback, "usageMetadata": usage, "modelVersion": MODEL_VERSION}]
    if model == "gemini-thinking":
        thought = {"text": "**Weighing the question**\nThe user wants the answer.", "thought": True}
        usage = _usage(
            1200,
            3,
            cachedContentTokenCount=1024,
            thoughtsTokenCount=250,
            cacheTokensDetails=[{"modality": "TEXT", "tokenCount": 1024}],
        )
        return [_event([thought]), _event([{"text": "42."}], finishReason="STOP", usage=usage)]
    raise GoogleError(
        404, f"models/{model} is not found for API version v1beta, or is not supported"
    )


def merge(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The single GenerateContentResponse equivalent to a stream of `events`."""
    merged: dict[str, Any] = {}
    candidates: dict[int, dict[str, Any]] = {}
    for event in events:
        for key in ("usageMetadata", "modelVersion", "responseId", "promptFeedback"):
            if key in event:
                merged[key] = event[key]
        for candidate in event.get("candidates", []):
            slot = candidates.setdefault(candidate.get("index", 0), {})
            for key, value in candidate.items():
                if key != "content":
                    slot[key] = value
            parts = slot.setdefault("content", {"parts": [], "role": "model"})["parts"]
            for part in (candidate.get("content") or {}).get("parts", []):
                joinable = parts and set(parts[-1]) == {"text"} and set(part) == {"text"}
                if joinable:
                    parts[-1] = {"text": parts[-1]["text"] + part["text"]}
                else:
                    parts.append(dict(part))
    for slot in candidates.values():
        if not slot["content"]["parts"]:
            del slot["content"]
    if candidates:
        merged["candidates"] = [candidates[i] for i in sorted(candidates)]
    return merged


def _sse(event: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(event) + b"\r\n\r\n"


class FakeGemini:
    """The aiohttp application and its recorder."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.app = web.Application()
        self.app.router.add_post("/v1beta/models/{target}", self.handle)

    def _authenticate(self, request: web.Request) -> None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if key is None:
            raise GoogleError(
                403,
                "Method doesn't allow unregistered callers (callers without established identity)."
                " Please use API Key or other form of API consumer identity to call this API.",
            )
        if key != API_KEY:
            info = {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
            }
            raise GoogleError(400, "API key not valid. Please pass a valid API key.", [info])

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Every route: record, authenticate, dispatch on the method after the colon."""
        body = await request.json(loads=orjson.loads)
        self.recorder.requests.append(Seen(request.path_qs, dict(request.headers), body))
        tag = len(self.recorder.requests) - 1
        model, _, method = request.match_info["target"].partition(":")
        try:
            self._authenticate(request)
            if model == "gemini-429":
                return self._rate_limited()
            if model == "gemini-403":
                raise GoogleError(
                    403, f"Permission denied: Consumer 'api_key:{API_KEY}' has been suspended."
                )
            if method == "batchEmbedContents":
                return self._embed(model, body)
            if method not in {"generateContent", "streamGenerateContent"}:
                raise GoogleError(404, f"Method {method} not found")
            check_generate(body)
            events = script(model, body)
        except GoogleError as error:
            return error.response()
        if method == "generateContent":
            return web.json_response(merge(events), dumps=lambda o: orjson.dumps(o).decode())
        if request.query.get("alt") != "sse":
            return web.json_response(events, dumps=lambda o: orjson.dumps(o).decode())
        return await self._stream(request, model, events, tag)

    def _rate_limited(self) -> web.Response:
        retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}
        response = GoogleError(
            429, "Resource has been exhausted (e.g. check quota).", [retry]
        ).response("RESOURCE_EXHAUSTED")
        response.headers["Retry-After"] = "7"
        return response

    def _embed(self, model: str, body: Any) -> web.Response:
        if model not in EMBEDDING_MODELS:
            raise GoogleError(404, f"models/{model} is not found or does not support embedding")
        check_fields(body, "BatchEmbedContentsRequest")
        requests = body.get("requests") or []
        if len(requests) > 100:
            raise GoogleError(
                400,
                "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch",
            )
        embeddings = []
        for i, item in enumerate(requests):
            if item.get("model") != f"models/{model}":
                raise GoogleError(400, f"Model name in requests[{i}] must match the request model")
            check_content(item.get("content"), f"requests[{i}].content", frozenset({"user"}))
            dims = int(item.get("outputDimensionality") or 4)
            number = text_number(item["content"]["parts"][0].get("text", ""), i)
            embeddings.append({"values": fake_embedding(number, dims)})
        return web.json_response({"embeddings": embeddings})

    async def _stream(
        self, request: web.Request, model: str, events: list[dict[str, Any]], tag: int
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Content-Disposition": "attachment"}
        )
        await response.prepare(request)
        try:
            if model == "gemini-slow":
                await self._slow(request, response, events[0], tag)
            elif model == "gemini-unicode":
                for event in events:
                    frame = _sse(event)
                    # One byte past the first lead byte of a multi-byte UTF-8 character.
                    cut = next(i for i, byte in enumerate(frame) if byte >= 0xC2) + 1
                    await response.write(frame[:cut])
                    await asyncio.sleep(0.01)
                    await response.write(frame[cut:])
            elif model in {"gemini-cut", "gemini-drop", "gemini-error-mid", "gemini-malformed"}:
                await self._broken(request, response, model, events)
                return response
            else:
                for event in events:
                    await response.write(_sse(event))
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.recorder.closed_at.setdefault(tag, time.monotonic())
            raise
        return response

    async def _broken(
        self,
        request: web.Request,
        response: web.StreamResponse,
        model: str,
        events: list[dict[str, Any]],
    ) -> None:
        await response.write(_sse(events[0]))
        if model == "gemini-cut":
            await response.write(_sse(events[1]))
            await response.write_eof()
        elif model == "gemini-drop":
            assert request.transport is not None
            request.transport.close()
        elif model == "gemini-malformed":
            await response.write(b'data: {"candidates": [{"content": {"par\r\n\r\n')
            await response.write_eof()
        else:
            error = {"code": 500, "message": f"Internal error; key={API_KEY}", "status": "INTERNAL"}
            await response.write(_sse({"error": error}))
            await response.write_eof()

    async def _slow(
        self, request: web.Request, response: web.StreamResponse, event: dict[str, Any], tag: int
    ) -> None:
        for _ in range(500):
            transport = request.transport
            if transport is None or transport.is_closing():
                self.recorder.closed_at[tag] = time.monotonic()
                raise ConnectionResetError
            await response.write(_sse(event))
            await asyncio.sleep(0.02)
