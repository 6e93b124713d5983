from django import forms

from customers.models import EngagementSettings, TouchpointType


class EngagementSettingsForm(forms.ModelForm):
    class Meta:
        model = EngagementSettings
        fields = [
            "half_life_days",
            "score_half_point",
            "new_window_days",
            "default_gap_days",
            "min_gap_days",
            "max_gap_days",
            "cooling_multiple",
            "cooling_min_days",
            "at_risk_multiple",
            "at_risk_min_days",
            "lapsed_multiple",
            "lapsed_min_days",
            "lapsed_max_days",
            "at_risk_p_alive",
            "reengaged_window_days",
        ]

    def clean(self):
        cleaned = super().clean()
        min_gap, max_gap = cleaned.get("min_gap_days"), cleaned.get("max_gap_days")
        if min_gap is not None and max_gap is not None and min_gap > max_gap:
            self.add_error("max_gap_days", "Must be at least the minimum gap.")
        cooling = cleaned.get("cooling_multiple")
        at_risk = cleaned.get("at_risk_multiple")
        lapsed = cleaned.get("lapsed_multiple")
        if None not in (cooling, at_risk, lapsed) and not cooling < at_risk < lapsed:
            self.add_error(
                "at_risk_multiple",
                "Multiples must increase: cooling < at risk < lapsed.",
            )
        return cleaned


class TouchpointTypeWeightForm(forms.ModelForm):
    """One row of the editable types table on the settings page."""

    class Meta:
        model = TouchpointType
        fields = ["weight", "counts_as_engagement", "is_active"]
        widgets = {"weight": forms.NumberInput(attrs={"step": "0.5"})}


TouchpointTypeFormSet = forms.modelformset_factory(
    TouchpointType, form=TouchpointTypeWeightForm, extra=0, can_delete=False
)
