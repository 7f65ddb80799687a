"""What each change leaves out, and the stream's order: an INSERT has no old image, a REMOVE no new one, and the
sequence numbers grow."""


def check(stack) -> None:
    records = [r for batch in stack.received["Reports"] for r in batch["Records"]]
    insert, modify, remove = (r["dynamodb"] for r in records)
    assert "OldImage" not in insert and "NewImage" not in remove, records
    numbers = [int(change["SequenceNumber"]) for change in (insert, modify, remove)]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3, numbers
    assert all(isinstance(change["ApproximateCreationDateTime"], int | float) for change in (insert, modify, remove))
    assert all(r["eventID"] for r in records) and len({r["eventID"] for r in records}) == 3, records
