from django import forms
from django.conf import settings

from imports.models import ImportRun


class ImportForm(forms.Form):
    kind = forms.ChoiceField(
        label="What the file holds", choices=ImportRun.Kind.choices, initial="touchpoints"
    )
    file = forms.FileField(
        label="CSV file", help_text="UTF-8 (Excel: CSV UTF-8), comma-separated, header row."
    )
    mode = forms.ChoiceField(
        label="If some rows are bad",
        choices=[
            (ImportRun.Mode.ATOMIC, "Import nothing (all or nothing)"),
            (ImportRun.Mode.SKIP, "Skip the bad rows, import the rest"),
        ],
        initial=ImportRun.Mode.ATOMIC,
        widget=forms.RadioSelect,
    )
    source = forms.SlugField(
        label="Source",
        max_length=64,
        required=False,
        help_text="Touchpoints only: where they came from (default csv). With an id column, "
        "importing the same file again under the same source creates nothing new.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.IMPORT_MAX_UPLOAD_MB
        if upload.size > limit * 1024 * 1024:
            raise forms.ValidationError(
                f"The file is {upload.size / 1024 / 1024:,.0f} MB; the limit is {limit:,} MB. "
                f"Split it, or ask an admin to run `manage.py import_csv` on the server."
            )
        if upload.size == 0:
            raise forms.ValidationError("The file is empty.")
        return upload
