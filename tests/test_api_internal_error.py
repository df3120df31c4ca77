"""An unexpected bug still answers in the OpenAI error shape, never a traceback."""

from fastapi.testclient import TestClient

from assistant.web.server import create_app


def test_unexpected_exception_is_openai_shaped_json(corpus_store, engine, monkeypatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(engine, "stream", broken)
    monkeypatch.setattr(engine, "ask", broken)
    client = TestClient(create_app(corpus_store, engine=engine), raise_server_exceptions=False)
    response = client.post("/v1/chat/completions", json={
        "model": "paper-assistant", "messages": [{"role": "user", "content": "What is MedVAE?"}]})
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text

