import json

import pytest

from eldric.stream import normalise


@pytest.mark.parametrize("status,body,message,type_,code", [
    # OpenAI / vLLM (current): kept as it is.
    (400, b'{"error":{"message":"bad","type":"BadRequestError","param":"n","code":400}}',
     "bad", "BadRequestError", "400"),
    # Ollama native API.
    (500, b'{"error":"pull model manifest: file does not exist"}',
     "pull model manifest: file does not exist", "api_error", None),
    # TGI.
    (422, b'{"error":"Input validation error","error_type":"validation"}',
     "Input validation error", "invalid_request_error", "validation"),
    # FastAPI-style detail (list of validation errors).
    (422, b'{"detail":[{"loc":["body","model"],"msg":"field required","type":"missing"}]}',
     "field required", "invalid_request_error", None),
    # vLLM (older): a flat object with message.
    (404, b'{"object":"error","message":"The model `x` does not exist.","type":"NotFoundError","param":null,"code":404}',
     "The model `x` does not exist.", "not_found_error", None),
    # Plain text, and nothing at all.
    (502, b"Bad Gateway", "Bad Gateway", "api_error", None),
    (503, b"", "upstream w1 answered HTTP 503", "api_error", None),
])
def test_normalise(status, body, message, type_, code):
    err = json.loads(normalise(status, body, "w1"))["error"]
    assert err["message"] == message
    assert err["type"] == type_
    assert err["code"] == code
    assert set(err) == {"message", "type", "param", "code"}


def test_an_error_body_nested_past_the_decoders_depth_is_still_normalised():
    err = json.loads(normalise(500, b"[" * 64_000, "up"))["error"]
    assert err["type"] == "api_error" and err["message"]
