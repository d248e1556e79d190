from django import forms

from .imports.readers import FORMATS


class ImportForm(forms.Form):
    file = forms.FileField(help_text="JSONL, CSV or Parquet (optionally gzipped), or a zipped save_to_disk folder.")
    format = forms.ChoiceField(choices=[("", "Detect from the file name"), *((f, f) for f in FORMATS)], required=False)
    source = forms.CharField(required=False, max_length=120, help_text="Who judged imported pairs.")
    skip_invalid = forms.BooleanField(
        label="Skip invalid rows",
        required=False,
        help_text="Import the valid rows and list every skipped row (otherwise: all or nothing).",
    )
