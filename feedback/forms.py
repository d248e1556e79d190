from django import forms

from .imports.kinds import SOURCE_MAX
from .imports.readers import FORMATS
from .labels import Judgement, LabelRejected, display_keys


class ImportForm(forms.Form):
    file = forms.FileField(
        help_text="JSONL, a JSON array, CSV or Parquet (optionally gzipped), or a zipped save_to_disk folder."
    )
    format = forms.ChoiceField(choices=[("", "Detect from the file name"), *((f, f) for f in FORMATS)], required=False)
    source = forms.CharField(required=False, max_length=SOURCE_MAX, help_text="Who judged imported pairs.")
    skip_invalid = forms.BooleanField(
        label="Skip invalid rows",
        required=False,
        help_text="Import the valid rows and list every skipped row (otherwise: all or nothing).",
    )


def small_int(text: str | None) -> int | None:
    """A form value of 1–18 ASCII digits as an int, else None. Not `isdigit()`: "²" is a digit to it, and int()
    refuses it; nor any length: a 20-digit id overflows a database integer."""
    if text and len(text) <= 18 and text.isascii() and text.isdigit():
        return int(text)
    return None


def judgement_from_post(data, *, kind: str, n_responses: int):
    """Reads the label form (browser or no-JS post) into a Judgement; rankings come as rank_<key> fields."""
    time_spent_ms = small_int(data.get("time_spent_ms"))
    strength = data.get("strength") or None
    if kind == "ranking":
        ranks = {}
        for key in display_keys(n_responses):
            rank = small_int(data.get(f"rank_{key}", ""))
            if rank is None:
                raise LabelRejected("choice", f"give response {key.upper()} a rank")
            ranks[key] = rank
        groups = [sorted(k for k in ranks if ranks[k] == r) for r in sorted(set(ranks.values()))]
        choice = [g[0] if len(g) == 1 else g for g in groups]
    else:
        choice = data.get("choice", "")
    return Judgement(choice=choice, strength=strength, rationale=data.get("rationale", ""), time_spent_ms=time_spent_ms)
