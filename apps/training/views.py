"""Supervisor pages of the training data: review, examples, export batches, API tokens.

Thin: parse, check the permission, call a selector or a service, render. Every page needs a signed-in user
(else a redirect to the login page) and the page's permission (else 403).
"""

from __future__ import annotations

import functools

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from apps.llm.attributes import ATTRIBUTE_NAMES
from apps.training import selectors, services
from apps.training.forms import ExampleForm, ExportForm, TokenForm
from apps.training.models import ApiToken, ExportBatch, TrainingExample
from apps.training.texts_ja import (
    EXPORT_NOTHING,
    EXPORT_QUEUED,
    EXPORT_RETRIED,
    REVIEW_CONFLICT,
    REVIEW_DONE,
    TOKEN_CREATED,
    TOKEN_REVOKED,
)
from karakuri_cs.http import STAFF_PAGES_CSP

REVIEW = "training.review_trainingexample"
EXPORT = "training.export_batches"
TOKENS = "training.manage_apitoken"
_SKIPPED = "training_review_skipped"


def supervisor_page(perm: str):
    """Sign-in required (redirect to the login page), then `perm` (403)."""

    def decorate(view):
        @login_required
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if not request.user.has_perm(perm):
                raise PermissionDenied
            response = view(request, *args, **kwargs)
            response["Content-Security-Policy"] = STAFF_PAGES_CSP
            response["Cache-Control"] = "no-store"
            return response

        return wrapper

    return decorate


def _context(request: HttpRequest, **extra) -> dict:
    user = request.user
    return {
        "nav_perms": {"audit": user.has_perm("console.view_audit_log")},
        "training_perms": {
            "review": user.has_perm(REVIEW),
            "export": user.has_perm(EXPORT),
            "tokens": user.has_perm(TOKENS),
        },
        **extra,
    }


@require_safe
@login_required
def index(request: HttpRequest) -> HttpResponse:
    for perm, name in ((REVIEW, "training:review"), (EXPORT, "training:batches"), (TOKENS, "training:tokens")):
        if request.user.has_perm(perm):
            return redirect(name)
    raise PermissionDenied


# --- Review ------------------------------------------------------------------------------------------------


def _example_page(
    request: HttpRequest,
    example: TrainingExample | None,
    *,
    mode: str,
    errors: dict[str, str] | None = None,
    sent_text: str | None = None,
    status: int = 200,
) -> HttpResponse:
    """The review screen (mode "review") or an example's page ("detail"); after a refused change, what was sent."""
    context = _context(
        request,
        example=example,
        mode=mode,
        active="review" if mode == "review" else "examples",
        counts=selectors.example_counts(),
        skipped=len(request.session.get(_SKIPPED, [])),
        form_errors=errors,
    )
    if example is not None:
        chosen = example.chosen_text if sent_text is None else sent_text
        context.update(
            chosen_text=chosen,
            attributes=[(name, example.attributes.get(name)) for name in ATTRIBUTE_NAMES],
            attribute_values=range(0, 5),
            correction=example.correction,
            decisions=selectors.example_decisions(example)[:20],
            batches=example.batch_items.select_related("batch").order_by("-batch_id")[:10],
        )
    return render(request, "training/example.html", context, status=status)


@require_safe
@supervisor_page(REVIEW)
def review_page(request: HttpRequest) -> HttpResponse:
    if request.GET.get("restart"):
        request.session[_SKIPPED] = []
        return redirect("training:review")
    example = selectors.example_next_for_review(skip=request.session.get(_SKIPPED, []))
    return _example_page(request, example, mode="review")


@require_http_methods(["GET", "HEAD", "POST"])
@supervisor_page(REVIEW)
def example_page(request: HttpRequest, example_id: int) -> HttpResponse:
    example = get_object_or_404(
        TrainingExample.objects.select_related("correction", "correction__operator", "reviewed_by"), id=example_id
    )
    mode = "review" if request.POST.get("mode", request.GET.get("mode")) == "review" else "detail"
    if request.method != "POST":
        return _example_page(request, example, mode=mode)

    form = ExampleForm(request.POST)
    if not form.is_valid():
        errors = {field: " ".join(str(e) for e in errs) for field, errs in form.errors.items()}
        return _example_page(
            request, example, mode=mode, errors=errors, sent_text=form.data.get("chosen_text"), status=400
        )
    action = form.cleaned_data["action"]
    after = reverse("training:review") if mode == "review" else reverse("training:example", args=[example.id])
    if action == "skip":
        request.session[_SKIPPED] = [*request.session.get(_SKIPPED, []), example.id][-500:]
        return redirect(after)
    try:
        if action == "edit":
            services.example_edit(
                example_id=example.id,
                actor=request.user,
                revision=form.cleaned_data["revision"],
                chosen_text=form.cleaned_data["chosen_text"],
                attributes=form.attributes() or example.attributes,
            )
        else:
            services.example_decide(
                example_id=example.id,
                actor=request.user,
                action=action,
                revision=form.cleaned_data["revision"],
                chosen_text=form.cleaned_data["chosen_text"] or None,
                attributes=form.attributes(),
            )
    except services.ExampleConflict:
        flash.warning(request, REVIEW_CONFLICT)
        return redirect(reverse("training:example", args=[example.id]) + ("?mode=review" if mode == "review" else ""))
    except services.ExampleInvalid as exc:
        return _example_page(
            request, example, mode=mode, errors=exc.errors, sent_text=form.cleaned_data["chosen_text"], status=400
        )
    flash.success(request, REVIEW_DONE[action])
    # An edit of the example being reviewed stays on it, so it can be approved next.
    if action == "edit" and mode == "review":
        after = reverse("training:example", args=[example.id]) + "?mode=review"
    return redirect(after)


@require_safe
@supervisor_page(REVIEW)
def example_list_page(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "")
    if status not in TrainingExample.Status.values:
        status = ""
    page = Paginator(selectors.example_list(status=status), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "training/examples.html",
        _context(
            request,
            active="examples",
            page=page,
            status=status,
            statuses=TrainingExample.Status.choices,
            counts=selectors.example_counts(),
        ),
    )


# --- Export batches ----------------------------------------------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
@supervisor_page(EXPORT)
def batch_list_page(request: HttpRequest) -> HttpResponse:
    form = ExportForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                batch = services.batch_export(
                    format=data["format"],
                    requested_by=request.user,
                    since=data["since"],
                    until=data["until"],
                    reexport=data["reexport"],
                    replay_corpus=data["replay_corpus"] or None,
                    replay_ratio=data["replay_ratio"] if data["replay_corpus"] else None,
                    seed=data["seed"],
                )
            except services.NothingToExport:
                flash.warning(request, EXPORT_NOTHING)
                return redirect("training:batches")
            except services.ExportInvalid as exc:
                for field, reason in exc.errors.items():
                    form.add_error(field if field in form.fields else None, reason)
            else:
                flash.success(request, EXPORT_QUEUED.format(name=batch.name))
                return redirect("training:batch", batch_id=batch.id)
        status = 400
    page = Paginator(selectors.batch_list(), 30).get_page(request.GET.get("page"))
    return render(
        request,
        "training/batches.html",
        _context(request, active="batches", form=form, page=page, counts=selectors.example_counts()),
        status=status,
    )


@require_safe
@supervisor_page(EXPORT)
def batch_page(request: HttpRequest, batch_id: int) -> HttpResponse:
    batch = get_object_or_404(ExportBatch.objects.select_related("requested_by", "claimed_by"), id=batch_id)
    return render(
        request,
        "training/batch.html",
        _context(
            request,
            active="batches",
            batch=batch,
            progress=selectors.batch_progress(batch),
            manifest=batch.manifest,
            counts=selectors.example_counts(),
        ),
    )


@require_safe
@supervisor_page(EXPORT)
def batch_progress(request: HttpRequest, batch_id: int) -> JsonResponse:
    return JsonResponse(selectors.batch_progress(get_object_or_404(ExportBatch, id=batch_id)))


@require_POST
@supervisor_page(EXPORT)
def batch_retry(request: HttpRequest, batch_id: int) -> HttpResponse:
    try:
        batch = services.batch_retry(batch_id=batch_id)
    except ExportBatch.DoesNotExist:
        return HttpResponse(status=404)
    except services.ExportInvalid as exc:
        flash.warning(request, "; ".join(exc.errors.values()))
        return redirect("training:batch", batch_id=batch_id)
    flash.success(request, EXPORT_RETRIED.format(name=batch.name))
    return redirect("training:batch", batch_id=batch_id)


# --- API tokens --------------------------------------------------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
@supervisor_page(TOKENS)
def token_list_page(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    new_token = None
    if request.method == "POST" and form.is_valid():
        row, new_token = services.api_token_create(name=form.cleaned_data["name"], created_by=request.user)
        flash.success(request, TOKEN_CREATED.format(name=row.name))
        form = TokenForm()
    return render(
        request,
        "training/tokens.html",
        _context(
            request,
            active="tokens",
            form=form,
            tokens=selectors.api_token_list(),
            new_token=new_token,
            counts=selectors.example_counts(),
        ),
        status=400 if form.errors else 200,
    )


@require_POST
@supervisor_page(TOKENS)
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    try:
        row = services.api_token_revoke(token_id=token_id, revoked_by=request.user)
    except ApiToken.DoesNotExist:
        return HttpResponse(status=404)
    flash.success(request, TOKEN_REVOKED.format(name=row.name))
    return redirect("training:tokens")
