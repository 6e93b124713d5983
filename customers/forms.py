from django import forms

from customers.models import EngagementSettings


class EngagementSettingsForm(forms.ModelForm):
    class Meta:
        model = EngagementSettings
        exclude = ["decay_epoch", "updated_by"]

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
