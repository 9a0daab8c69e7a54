"""Input rules shared by the services, the REST schemas and the CLI."""

from __future__ import annotations

import re
import unicodedata

from email_validator import EmailNotValidError, validate_email

from atom_core.errors import Invalid
from atom_core.validation import text_problem

EMAIL_MAX = 254
PASSWORD_MIN = 10
PASSWORD_MAX = 128
NAME_MAX = 100

# A few of the most common passwords of at least PASSWORD_MIN characters;
# the length rule already removes the rest of the usual lists.
COMMON_PASSWORDS = frozenset(
    {
        "1234567890",
        "0123456789",
        "password12",
        "password123",
        "password1!",
        "qwertyuiop",
        "1q2w3e4r5t",
        "iloveyou12",
        "qwerty1234",
        "1qaz2wsx3edc",
        "abcdefghij",
        "letmein123",
        "welcome123",
        "changeme123",
        "administrator",
        "passw0rd12",
        "p@ssw0rd12",
        "q1w2e3r4t5",
        "zaq12wsxcde",
        "aaaaaaaaaa",
    }
)


def normalize_email(email: str, field: str = "email") -> str:
    if not isinstance(email, str) or not email.strip():
        raise Invalid("email is required", field=field)
    if len(email) > EMAIL_MAX:
        raise Invalid(f"email must be at most {EMAIL_MAX} characters", field=field)
    try:
        # Syntax only: a deliverability check would need DNS (no network here).
        checked = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise Invalid(f"email is not valid: {exc}", field=field) from None
    return checked.normalized.lower()


def check_password(password: str, email: str = "", field: str = "password") -> str:
    if not isinstance(password, str) or len(password) < PASSWORD_MIN:
        raise Invalid(f"password must be at least {PASSWORD_MIN} characters", field=field)
    if len(password) > PASSWORD_MAX:
        raise Invalid(f"password must be at most {PASSWORD_MAX} characters", field=field)
    if password.lower() in COMMON_PASSWORDS or len(set(password)) < 5:
        raise Invalid("password is too easy to guess; use a longer, less common one", field=field)
    local_part = email.split("@", 1)[0].lower()
    if len(local_part) >= 4 and local_part in password.lower():
        raise Invalid("password must not contain your email address", field=field)
    return password


def check_name(name: str, field: str = "name", max_length: int = NAME_MAX) -> str:
    label = field.replace("_", " ")  # messages are for people; `field` is for programs
    if not isinstance(name, str) or not name.strip():
        raise Invalid(f"{label} is required", field=field)
    name = name.strip()
    if len(name) > max_length:
        raise Invalid(f"{label} must be at most {max_length} characters", field=field)
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise Invalid(f"{label} must not contain control characters", field=field)
    problem = text_problem(name)
    if problem:
        raise Invalid(f"{label} {problem}", field=field)
    return name


def slugify(text: str, max_length: int = 48) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_length].strip("-") or "tenant"
