from django import forms

from success.models import CustomerNote
from success.selectors import DEFAULT_DAYS, MAX_DAYS


class RiskFilterForm(forms.Form):
    days = forms.IntegerField(
        label="Renewing within (days)", min_value=1, max_value=MAX_DAYS, initial=DEFAULT_DAYS
    )
    mine = forms.BooleanField(label="My accounts only", required=False)
    page = forms.IntegerField(min_value=1, required=False)

    def __init__(self, data=None, **kwargs):
        data = data.copy() if data is not None else None
        if data is not None and not data.get("days"):
            data["days"] = DEFAULT_DAYS
        super().__init__(data, **kwargs)


class NoteForm(forms.Form):
    kind = forms.ChoiceField(choices=CustomerNote.Kind.choices)
    body = forms.CharField(
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "What happened? (optional)"}),
    )
