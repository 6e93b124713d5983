from django import forms

from customers.models import TouchpointType
from tracking.messages import MAX_EVENT_NAME_LENGTH
from tracking.models import Source


class SourceForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="Who sends: e.g. 'Website (Segment)', 'Mobile app', 'Billing backend'.",
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if Source.objects.filter(name__iexact=name).exists():
            raise forms.ValidationError(f"A source named {name!r} exists already.")
        return name


class EventMappingForm(forms.Form):
    event_name = forms.CharField(
        max_length=MAX_EVENT_NAME_LENGTH,
        widget=forms.TextInput(attrs={"placeholder": "Event name, e.g. Report Exported"}),
    )
    type = forms.ModelChoiceField(
        queryset=TouchpointType.objects.filter(is_active=True).order_by("label"),
        empty_label="Choose a touchpoint type…",
        to_field_name="key",
    )
