"""Pages and the small JSON API of the operator console. Thin: parse, check the role, call a selector or a
service, render. Every page needs a signed-in user (else a redirect to the login page) with console access
(else 403); every API answers 403 without them. Live updates and actions go over the operator socket
(apps.console.consumers)."""

from __future__ import annotations

import functools
import uuid

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from apps.chat.models import Conversation, Message
from apps.console import selectors, services
from apps.console.forms import NO_FAQ, CannedResponseForm, CorrectionForm
from apps.console.models import AuditEntry, CannedResponse
from apps.console.texts_ja import CORRECTION_FIELD_ERRORS
from apps.llm.attributes import ATTRIBUTE_NAMES, resolve_attributes
from apps.training.services import CorrectionInvalid
from karakuri_cs.http import STAFF_PAGES_CSP


def _headers(response: HttpResponse) -> HttpResponse:
    response["Content-Security-Policy"] = STAFF_PAGES_CSP
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "same-origin"
    return response


def console_page(perm: str = "console.use_console"):
    """Sign-in required (redirect), then `perm` (403)."""

    def decorate(view):
        @login_required
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if not request.user.has_perm("console.use_console") or not request.user.has_perm(perm):
                raise PermissionDenied
            return _headers(view(request, *args, **kwargs))

        return wrapper

    return decorate


def console_api(view):
    """403 JSON for anonymous users and users without console access (an API does not redirect)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not request.user.is_authenticated:
            return JsonResponse({"error": "login_required"}, status=403)
        if not request.user.has_perm("console.use_console"):
            return JsonResponse({"error": "permission_denied"}, status=403)
        response = view(request, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response

    return wrapper


def _page_context(request: HttpRequest, **extra) -> dict:
    return {"nav_perms": {"audit": request.user.has_perm("console.view_audit_log")}, **extra}


@require_safe
@console_page()
def queue_page(request: HttpRequest) -> HttpResponse:
    return render(request, "console/queue.html", _page_context(request, filters=selectors.QUEUE_FILTERS))


@require_safe
@console_page()
def conversation_page(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    conversation = get_object_or_404(Conversation, id=conversation_id)
    page_data = {
        "conversation_id": str(conversation.id),
        "user": {"id": request.user.pk, "name": request.user.get_username()},
        "can_handle": request.user.has_perm("console.handle_conversations"),
        "can_correct": request.user.has_perm("console.correct_replies"),
        "can_close_any": request.user.has_perm("console.supervise_conversations"),
        "correct_url": reverse("console:correct", args=[conversation.id, 0]).replace("/0/", "/{seq}/"),
        "canned": list(CannedResponse.objects.values("shortcut", "title", "text")),
    }
    return render(
        request, "console/conversation.html", _page_context(request, conversation=conversation, page_data=page_data)
    )


@require_http_methods(["GET", "HEAD", "POST"])
@console_page("console.correct_replies")
def correction_page(request: HttpRequest, conversation_id: uuid.UUID, seq: int) -> HttpResponse:
    reply = get_object_or_404(
        Message.objects.select_related("in_reply_to"), conversation_id=conversation_id, seq=seq, role=Message.Role.BOT
    )
    if reply.in_reply_to is None:
        raise PermissionDenied("not a reply to a customer message")
    can_edit_faq = request.user.has_perm("console.edit_faq")
    can_add_phrasing = request.user.has_perm("console.add_faq_phrasing")
    candidates = reply.provenance.get("faq", [])
    cited = reply.provenance.get("cited_faq_ids") or []
    options = {"faq_candidates": candidates, "can_edit_faq": can_edit_faq, "can_add_phrasing": can_add_phrasing}
    if request.method == "POST":
        form = CorrectionForm(request.POST, **options)
        if form.is_valid():
            data = form.cleaned_data
            action = data.get("faq_action") or ""
            faq_edit = None
            if action == "create":
                faq_edit = services.FaqEdit(
                    action="create",
                    external_id=data["faq_new_id"],
                    question=data["faq_question"],
                    answer=data.get("faq_answer") or data["chosen_text"],
                    category=data.get("faq_category") or "",
                )
            elif action == "update":
                faq_edit = services.FaqEdit(
                    action="update", external_id=data["faq_choice"], answer=data.get("faq_answer") or ""
                )
            choice = data.get("faq_choice") or ""
            try:
                correction = services.correction_submit(
                    user=request.user,
                    reply_message=reply,
                    chosen_text=data["chosen_text"],
                    faq_external_id="" if choice == NO_FAQ else choice,
                    no_faq_covers=choice == NO_FAQ,
                    attributes=form.attributes,
                    reason_tags=form.tags,
                    add_phrasing=bool(data.get("add_phrasing")),
                    faq_edit=faq_edit,
                )
            except CorrectionInvalid as exc:
                for field, reason in exc.errors.items():
                    message = CORRECTION_FIELD_ERRORS.get(field, reason)
                    if field == "faq_external_id":
                        field = "faq_choice"
                    form.add_error(field if field in form.fields else None, message)
            else:
                flash.success(request, f"回答 #{reply.seq} の修正を保存しました（修正 #{correction.pk}）。")
                return redirect(reverse("console:conversation", args=[conversation_id]) + f"#m{reply.seq}")
        status = 400
    else:
        initial = {f"attr_{n}": v for n, v in resolve_attributes().items()}
        initial.update(
            chosen_text=reply.text,
            faq_choice=cited[0] if cited else "",
            add_phrasing=True,
            faq_question=reply.in_reply_to.text,
        )
        form = CorrectionForm(initial=initial, **options)
        status = 200
    context = _page_context(
        request,
        form=form,
        reply=reply,
        question=reply.in_reply_to,
        conversation_id=conversation_id,
        attribute_names=ATTRIBUTE_NAMES,
    )
    return render(request, "console/correction.html", context, status=status)


@require_safe
@console_page()
def gaps_page(request: HttpRequest) -> HttpResponse:
    gaps = selectors.knowledge_gaps()
    return render(request, "console/gaps.html", _page_context(request, gaps=gaps, days=selectors.GAP_WINDOW_DAYS))


@require_http_methods(["GET", "HEAD", "POST"])
@console_page("console.view_cannedresponse")
def canned_list_page(request: HttpRequest) -> HttpResponse:
    form = CannedResponseForm(request.POST or None)
    if request.method == "POST":
        if not request.user.has_perm("console.add_cannedresponse"):
            raise PermissionDenied
        if form.is_valid():
            services.canned_response_save(user=request.user, **form.cleaned_data)
            flash.success(request, "定型文を保存しました。")
            return redirect("console:canned")
    return render(
        request,
        "console/canned_list.html",
        _page_context(request, form=form, items=CannedResponse.objects.all()),
        status=400 if form.errors else 200,
    )


@require_http_methods(["GET", "HEAD", "POST"])
@console_page("console.change_cannedresponse")
def canned_edit_page(request: HttpRequest, pk: int) -> HttpResponse:
    canned = get_object_or_404(CannedResponse, pk=pk)
    form = CannedResponseForm(request.POST or None, instance=canned)
    if request.method == "POST" and form.is_valid():
        services.canned_response_save(user=request.user, instance=canned, **form.cleaned_data)
        flash.success(request, "定型文を保存しました。")
        return redirect("console:canned")
    return render(
        request,
        "console/canned_edit.html",
        _page_context(request, form=form, item=canned),
        status=400 if form.errors else 200,
    )


@require_POST
@console_page("console.delete_cannedresponse")
def canned_delete(request: HttpRequest, pk: int) -> HttpResponse:
    services.canned_response_delete(user=request.user, canned=get_object_or_404(CannedResponse, pk=pk))
    flash.success(request, "定型文を削除しました。")
    return redirect("console:canned")


@require_safe
@console_page("console.view_audit_log")
def audit_page(request: HttpRequest) -> HttpResponse:
    entries = AuditEntry.objects.all()
    action = request.GET.get("action", "")
    if action in AuditEntry.Action.values:
        entries = entries.filter(action=action)
    actor = request.GET.get("actor", "").strip()
    if actor:
        entries = entries.filter(actor_name=actor)
    return render(
        request,
        "console/audit.html",
        _page_context(request, entries=entries[:300], actions=AuditEntry.Action.choices, action=action, actor=actor),
    )


# JSON API (read-only; the console's actions go over the socket).


@require_safe
@console_api
def queue_api(request: HttpRequest) -> JsonResponse:
    status = request.GET.get("status", "all")
    if status not in selectors.QUEUE_FILTERS:
        return JsonResponse({"error": "invalid_field", "detail": "status"}, status=400)
    sections = selectors.queue_list(user=request.user, status=status, q=request.GET.get("q", ""))
    return JsonResponse({"sections": sections})


@require_safe
@console_api
def conversation_api(request: HttpRequest, conversation_id: uuid.UUID) -> JsonResponse:
    try:
        detail = selectors.conversation_detail(conversation_id=conversation_id)
    except Conversation.DoesNotExist:
        return JsonResponse({"error": "not_found"}, status=404)
    return JsonResponse(detail)
