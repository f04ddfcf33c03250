from django.apps import AppConfig
from django.db.backends.signals import connection_created


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Staff accounts"

    def ready(self) -> None:
        from .timestamps import use_fast_loader

        connection_created.connect(use_fast_loader, dispatch_uid="accounts.timestamps")
