"""A webhook moving an org's subscription while a seat changes: one lock order, no deadlock."""

import threading
import time

import pytest
from django.db import close_old_connections, connection, transaction

from subscriptions.models import Subscription
from subscriptions.services.lifecycle import Cause, subscription_change_state
from tests.monetization.factories import CustomerFactory
from tests.verified_orgs.factories import verified_org
from verified_orgs.models import Affiliation, Organization
from verified_orgs.services.affiliations import affiliation_accept, affiliation_invite, affiliation_remove

pytestmark = pytest.mark.django_db(transaction=True)


def test_subscription_hold_and_seat_removal_at_once_both_complete():
    org = verified_org()
    member = CustomerFactory()
    _, token = affiliation_invite(organization=org, customer=member, invited_by=org.billing_customer)
    aff = affiliation_accept(token=token, customer=member)
    sub_id = org.subscription_id
    sub_locked = threading.Event()
    errors: list[BaseException] = []

    def webhook():
        # Like provider_sync: the subscription row is locked first; the state hook then locks the org.
        try:
            with transaction.atomic():
                sub = Subscription.objects.select_for_update().get(pk=sub_id)
                sub_locked.set()
                time.sleep(0.5)  # the seat removal is now waiting for a lock
                subscription_change_state(
                    subscription=sub, transition="put_on_hold", cause=Cause.provider_event("stripe", "evt_hold")
                )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def seat_removal():
        sub_locked.wait(5)
        try:
            affiliation_remove(affiliation=aff, actor_label="org-admin", reason="left")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=webhook), threading.Thread(target=seat_removal)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    close_old_connections()
    assert errors == []
    org.refresh_from_db()
    assert (org.state, org.suspension_cause) == (Organization.State.SUSPENDED, Organization.SuspensionCause.PAYMENT)
    assert Affiliation.objects.get(pk=aff.pk).state == Affiliation.State.REMOVED
    assert Subscription.objects.get(pk=sub_id).quantity == 0
