from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("scheduling", "0002_sweep_claim_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="appointmentrejection",
            name="reason_code",
            field=models.CharField(
                choices=[
                    ("schedule_conflict", "Schedule conflict"),
                    ("too_far", "Too far"),
                    ("client_concern", "Client concern"),
                    ("health", "Health"),
                    ("other", "Other"),
                ],
                default="other",
                max_length=32,
            ),
        ),
    ]
