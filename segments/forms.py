from django import forms

from segments.models import Segment


class SegmentForm(forms.ModelForm):
    """Name and description; the filter itself comes from the CustomerFilter fields."""

    class Meta:
        model = Segment
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}
