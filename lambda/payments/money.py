"""Money: Decimal amounts checked against ISO 4217 minor units; never a binary float.

The currency table comes from the maintained ``iso4217`` package (the ISO list published by SIX).
It is loaded on first use: parsing its XML costs ~40 ms, which would otherwise land on every cold
start, including functions that never look at a currency.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from functools import cache

from payments.errors import ValidationError

MAX_MAJOR_UNITS = Decimal("999999999999")
# Plain decimal notation only: optional sign (rejected later with a clearer message), digits,
# optional fraction. No exponent, no NaN/Infinity, no thousands separators, no spaces.
# ASCII digits only (\d admits Arabic-Indic and fullwidth digits), and \A...\Z: `$` also
# matches before a final newline, so "10\n" would pass.
_PLAIN_DECIMAL = re.compile(r"\A[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z")
_CURRENCY_SHAPE = re.compile(r"\A[A-Za-z]{3}\Z")


class ExponentNumber(str):
    """A JSON number written with an exponent (``1e3``); kept as its text so it can be refused.

    ``json.loads(parse_float=...)`` hands over the literal text, which is the only place the
    notation is still visible: ``Decimal("1e3")`` and ``Decimal("1000")`` compare equal.
    """


def parse_json_number(text: str) -> Decimal | ExponentNumber:
    """``parse_float`` hook: plain decimals become ``Decimal``; exponent notation is flagged."""
    if "e" in text or "E" in text:
        return ExponentNumber(text)
    return Decimal(text)


@cache
def minor_units() -> dict[str, int]:
    """Active ISO 4217 currency codes and their minor-unit digits.

    Entries without minor units (gold, SDR, test codes such as XAU, XDR, XTS, XXX) are not money
    a payment can be made in, so they are left out.
    """
    import iso4217  # deferred on purpose, see module docstring

    return {c.code: c.exponent for c in iso4217.Currency if c.exponent is not None}


def parse_currency(value: object) -> str:
    """Return the upper-case code of an active ISO 4217 currency or raise ``ValidationError``."""
    if not isinstance(value, str):
        raise ValidationError({"currency": "must be a string (ISO 4217 code)"})
    if not _CURRENCY_SHAPE.fullmatch(value):
        raise ValidationError({"currency": "must be a three-letter ISO 4217 code"})
    code = value.upper()
    if code not in minor_units():
        raise ValidationError({"currency": f"{value!r} is not an active ISO 4217 currency"})
    return code


def parse_amount(value: object, currency: str | None = None, *, field: str = "amount") -> Decimal:
    """Parse an amount given as a JSON string or number (already a ``Decimal``, never a float).

    With ``currency`` the amount is checked against its minor units and returned quantized to
    them, so ``"10"`` and ``"10.00"`` USD are the same amount. Without it (the currency itself was
    invalid) the other rules still apply so the caller can report both fields at once.
    """
    # bool is a subclass of int: JSON true must not become the amount 1.
    if isinstance(value, bool | float):
        raise ValidationError({field: "must be a decimal string or number, not " + _kind(value)})
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, ExponentNumber):
        raise ValidationError({field: "must use plain decimal notation (no exponent)"})
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValidationError({field: "must be a finite number"})
        text = format(value, "f")
    elif isinstance(value, str):
        text = value
    else:
        raise ValidationError({field: "must be a decimal string or number, not " + _kind(value)})

    if not _PLAIN_DECIMAL.fullmatch(text):
        raise ValidationError(
            {field: "must be a plain decimal such as 99.99 (no exponent, spaces or symbols)"}
        )
    try:
        amount = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise ValidationError({field: "is not a decimal number"}) from None
    if amount <= 0:
        raise ValidationError({field: "must be greater than 0"})
    if amount > MAX_MAJOR_UNITS:
        raise ValidationError({field: f"must be at most {MAX_MAJOR_UNITS} major units"})
    if currency is None:
        return amount
    digits = minor_units()[currency]
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)  # finite, checked above
    # Trailing zeros beyond the minor units are harmless ("10.000" USD is 10.00); real digits
    # beyond them are not.
    if -exponent > digits and amount != amount.quantize(Decimal(1).scaleb(-digits)):
        raise ValidationError(
            {field: f"has more than {digits} decimal place(s), the minor units of {currency}"}
        )
    return amount.quantize(Decimal(1).scaleb(-digits))


def format_amount(amount: Decimal) -> str:
    """The string form used in every response, event and report (``"99.99"``)."""
    return format(amount, "f")


def to_json(value: object) -> str:
    """Compact JSON with every ``Decimal`` as its amount string (API bodies and events)."""
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return format_amount(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return "a binary float"
    return type(value).__name__
