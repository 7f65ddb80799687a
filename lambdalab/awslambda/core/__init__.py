"""The rules, pure and on an injected Clock: admission and pools, async retries, event source mapping scaling, the
function store, outcomes, the sans-IO lifecycle, billing, and the AWS errors they raise."""
