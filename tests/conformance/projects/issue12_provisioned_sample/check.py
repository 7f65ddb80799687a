"""Every call of the provisioned machine ran on a provisioned environment, none of the base machine's did."""

from tests.conformance.runner import wait_until


def check(stack) -> None:
    def successes(function):
        return [r for r in stack.records(function) if r["outcome"] == "success"]

    # the run directory's records are flushed every 0.5 s: wait for all twelve
    wait_until(lambda: len(successes("ProvisionedFunction")) == len(successes("BaseFunction")) == 6, 10, "12 records")
    provisioned, base = successes("ProvisionedFunction"), successes("BaseFunction")
    assert {r["start_kind"] for r in provisioned} == {"provisioned"}, [r["start_kind"] for r in provisioned]
    assert {r["qualifier"] for r in provisioned} == {"live"}, [r["qualifier"] for r in provisioned]
    assert "provisioned" not in {r["start_kind"] for r in base}, [r["start_kind"] for r in base]
