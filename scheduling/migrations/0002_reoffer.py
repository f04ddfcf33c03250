# Re-offer: the automatic-offer counter, the "assign by hand" flag, two event kinds.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('scheduling', '0001_initial'),
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
        migrations.AlterField(
            model_name='appointmentevent',
            name='kind',
            field=models.CharField(choices=[('created', 'Created'), ('assigned', 'Assigned'), ('accepted', 'Accepted'), ('rejected', 'Rejected'), ('rejection_accepted', 'Rejection accepted'), ('rejection_denied', 'Rejection denied'), ('started', 'Started'), ('completed', 'Completed'), ('cancelled', 'Cancelled'), ('timed_out', 'Timed out'), ('no_available_therapist', 'No available therapist'), ('reassigned', 'Reassigned'), ('held', 'Assign by hand (on/off)')], max_length=32),
        ),
    ]
