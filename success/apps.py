from django.apps import AppConfig


class SuccessConfig(AppConfig):
    name = "success"
    verbose_name = "Customer success"
