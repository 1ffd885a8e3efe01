"""The experiment screens: starting one from the rule's page, its page with the arms' figures, stop and decide."""

import pytest
from django.urls import reverse

from routing.experiments.models import Arm, Experiment, ExperimentEnd, ExperimentStatus
from tests.factories import ExperimentFactory, ExperimentLeadFactory
from tests.governance.helpers import replay

pytestmark = pytest.mark.django_db

START = {"percent": "30", "max_leads": "500", "ends_at": "", "route_latency": "-50", "manual_touches": "-70"}


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_the_rule_page_offers_its_owner_the_start_form_and_says_why_to_others(client, mql_rule, ops_person):
    client.force_login(mql_rule.owner)
    page = client.get(reverse("console:rule", args=[mql_rule.pk])).content.decode()
    assert 'id="experiment-start"' in page and "Run staging v2 against production" in page
    client.force_login(ops_person)
    page = client.get(reverse("console:rule", args=[mql_rule.pk])).content.decode()
    assert 'id="experiment-start"' not in page
    assert "Only the rule's owner or an admin starts an experiment." in page


def test_the_owner_starts_one_from_the_rule_page(client, mql_rule):
    client.force_login(mql_rule.owner)
    answer = client.post(reverse("console:experiment-start", args=[mql_rule.pk]), START, follow=True)
    experiment = Experiment.objects.get()
    assert answer.redirect_chain[-1][0] == reverse("console:experiment", args=[experiment.pk])
    assert _messages(answer) == [f"Experiment #{experiment.pk} started: v2 on 30% of the leads the rule concerns."]
    assert (experiment.percent, experiment.max_leads) == (30, 500)
    assert experiment.criteria == {"route_latency": -50.0, "manual_touches": -70.0}


def test_a_refused_start_says_why_on_the_rule_page(client, mql_rule, ops_person):
    client.force_login(mql_rule.owner)
    answer = client.post(
        reverse("console:experiment-start", args=[mql_rule.pk]), {**START, "max_leads": ""}, follow=True
    )
    assert _messages(answer) == ["max_leads: Give a lead count, an end time, or both: an experiment needs an end."]
    answer = client.post(
        reverse("console:experiment-start", args=[mql_rule.pk]), {**START, "percent": "100"}, follow=True
    )
    assert _messages(answer) == ["Candidate's share (%): Ensure this value is less than or equal to 99."]
    client.force_login(ops_person)
    answer = client.post(reverse("console:experiment-start", args=[mql_rule.pk]), START, follow=True)
    assert _messages(answer) == ["Only the rule's owner (rowan) or an admin can start an experiment on 'MQLs'."]
    assert not Experiment.objects.exists()


def test_the_page_shows_each_arm_and_refreshes_while_running(client, mql_rule):
    experiment = ExperimentFactory(rule=mql_rule, criteria={"route_latency": -50})
    ExperimentLeadFactory.create_batch(3, experiment=experiment, arm=Arm.PRODUCTION)
    ExperimentLeadFactory(experiment=experiment, arm=Arm.CANDIDATE)
    client.force_login(mql_rule.owner)
    page = client.get(reverse("console:experiment", args=[experiment.pk])).content.decode()
    assert 'id="arm-production"' in page and 'id="arm-candidate"' in page
    assert "1.0 s (too few for an interval)" in page  # 1,000 ms, as the dashboard shows durations
    assert 'id="criterion-route_latency"' in page and "too early to tell" in page
    assert f'hx-get="/console/experiments/{experiment.pk}/figures/"' in page
    assert 'id="stop"' in page and 'id="promote"' in page
    figures = client.get(reverse("console:experiment-figures", args=[experiment.pk])).content.decode()
    assert figures.startswith('<div id="figures"') and "<html" not in figures

    experiment.status, experiment.end_reason = ExperimentStatus.ENDED, ExperimentEnd.MAX_LEADS
    experiment.save()
    page = client.get(reverse("console:experiment", args=[experiment.pk])).content.decode()
    assert "hx-get" not in page.split('id="figures"')[1].split(">")[0]
    assert 'id="stop"' not in page and "reached its lead count" in page


def test_others_see_the_figures_and_why_they_cannot_decide(client, mql_rule, ops_person):
    experiment = ExperimentFactory(rule=mql_rule)
    client.force_login(ops_person)
    page = client.get(reverse("console:experiment", args=[experiment.pk])).content.decode()
    assert 'id="promote"' not in page
    assert "Only the rule's owner (rowan) or an admin stops or decides this experiment." in page
    answer = client.post(reverse("console:experiment-action", args=[experiment.pk, "stop"]), follow=True)
    assert _messages(answer) == ["Only the rule's owner (rowan) or an admin can stop an experiment on 'MQLs'."]


def test_stop_then_promote_from_the_page(client, mql_rule):
    experiment = ExperimentFactory(rule=mql_rule)
    client.force_login(mql_rule.owner)
    answer = client.post(reverse("console:experiment-action", args=[experiment.pk, "stop"]), follow=True)
    assert _messages(answer) == [f"Experiment #{experiment.pk} stopped: decide whether to promote the candidate."]
    blocked = client.post(reverse("console:experiment-action", args=[experiment.pk, "promote"]), follow=True)
    assert _messages(blocked)[0].startswith("The promotion gates refused: Run a replay with staging v2")
    replay()
    answer = client.post(
        reverse("console:experiment-action", args=[experiment.pk, "promote"]), {"note": "Faster"}, follow=True
    )
    assert _messages(answer) == [f"Experiment #{experiment.pk}: candidate promoted."]
    assert 'id="decided"' in answer.content.decode() and "“Faster”" in answer.content.decode()
    mql_rule.refresh_from_db()
    assert mql_rule.production_version.number == 2


def test_the_list_links_each_experiment(client, mql_rule, ops_person):
    experiment = ExperimentFactory(rule=mql_rule)
    client.force_login(ops_person)
    page = client.get(reverse("console:experiments")).content.decode()
    assert f'href="/console/experiments/{experiment.pk}/"' in page and "MQLs" in page
    assert client.get(reverse("console:experiments") + "?rule=²").status_code == 200


def test_screens_need_a_console_account(client, mql_rule, outsider):
    experiment = ExperimentFactory(rule=mql_rule)
    assert client.get(reverse("console:experiment", args=[experiment.pk])).status_code == 302  # to sign in
    client.force_login(outsider)
    assert client.get(reverse("console:experiments")).status_code == 403
    assert client.post(reverse("console:experiment-action", args=[experiment.pk, "stop"])).status_code == 403
