"""`${!NotAVariable}` must survive; the runner would substitute it, so the literal is checked here without it."""


def check(stack) -> None:
    import json

    payload = json.loads(stack.client("lambda").invoke(FunctionName=stack.name_of("EnvFunction"))["Payload"].read())
    assert payload["LITERAL"] == "${NotAVariable} stays", payload["LITERAL"]
