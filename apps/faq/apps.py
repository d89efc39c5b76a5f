from django.apps import AppConfig


class FaqConfig(AppConfig):
    name = "apps.faq"
    label = "faq"
    verbose_name = "FAQ knowledge base"
