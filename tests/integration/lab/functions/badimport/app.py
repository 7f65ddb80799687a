"""A handler whose module cannot be imported: INIT fails with Runtime.ImportModuleError."""

import module_that_does_not_exist  # noqa: F401


def lambda_handler(event, context):
    return {}
