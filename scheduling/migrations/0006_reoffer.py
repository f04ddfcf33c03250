# Re-offer: the automatic-offer counter, the "assign by hand" flag, two event kinds.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('scheduling', '0005_offer_receipts'),
    ]

    operations = [
        migrations.AddField(
            model_name='appointment',
            name='auto_offers',
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='appointment',
            name='held',
            field=models.BooleanField(default=False, help_text='Assign by hand: no automatic offers.'),
        ),
    ]
