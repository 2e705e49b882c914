"""CDKTF app entry: read the environment, build the payments stack, synthesize it.

Configuration errors end the process with exit code 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import sys

from lib.settings import ConfigError, Settings


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2

    from cdktf import App

    from lib.account import ACCOUNT_STACK_NAME, AccountStack
    from lib.functions import LayerMissingError
    from lib.stack import STACK_NAME, PaymentsStack

    app = App()
    try:
        # One stack per app, so a plain `cdktf deploy` needs no stack name: the environment of
        # ENVIRONMENT_SUFFIX, or (PAYMENTS_STACK=account) what an account holds once per region.
        stack = (
            AccountStack(app, ACCOUNT_STACK_NAME, settings=settings)
            if settings.stack == "account"
            else PaymentsStack(app, STACK_NAME, settings=settings)
        )
    except LayerMissingError as error:
        print(f"build error: {error}", file=sys.stderr)
        return 2
    if stack.backend_notice:
        print(stack.backend_notice, file=sys.stderr)
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
