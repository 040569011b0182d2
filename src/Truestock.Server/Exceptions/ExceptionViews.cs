namespace Truestock.Server.Exceptions;

/// <summary>A note on an exception: who wrote it (as they sign it), what, when, and the API key that sent it.</summary>
public sealed record ExceptionNoteView(string Author, string Text, DateTimeOffset At, string Actor);

/// <summary>One row of an exception's audit trail.</summary>
/// <param name="At">When.</param>
/// <param name="Actor">Who: the API key's name, or "anonymous" when the hub runs without keys.</param>
/// <param name="Action">"update" (status and/or assignee) or "note".</param>
/// <param name="IncidentRaisedAt">The raised time of the incident the change belongs to (a dead letter can fail again later).</param>
public sealed record ExceptionHistoryView(
    DateTimeOffset At, string Actor, string Action, DateTimeOffset IncidentRaisedAt, string? FromStatus, string? ToStatus,
    bool? AssigneeChanged, string? FromAssignee, string? ToAssignee, string? NoteAuthor, string? NoteText);

/// <summary>What reconciliation found, on a drift exception.</summary>
public sealed record ExceptionDriftView(long? Expected, long? Reported, string? System, string? Reference, long Occurrences, DateTimeOffset LastSeenAt);

/// <summary>
/// One exception of the merged list. <c>id</c>, <c>type</c> and <c>recordedAt</c> are the fields of the engine-only list
/// this extends (<c>id</c> only on engine exceptions); <c>key</c> names every item. <c>notes</c> and <c>history</c> are
/// only on <c>GET /v1/exceptions/{key}</c>; the list carries <c>noteCount</c> and <c>lastNote</c>.
/// </summary>
public sealed record ExceptionItemView(
    string Key, long? Id, string Kind, string Type, string? Sku, string? LocationId, string? ChannelId, string? EventId, string? ReservationId,
    string? Source, long? LedgerId, string? MovementType, long Quantity, string Detail, DateTimeOffset RecordedAt, DateTimeOffset RaisedAt,
    double AgeSeconds, string Status, string? Assignee, DateTimeOffset? ResolvedAt, IReadOnlyList<string> NextStatuses, int NoteCount,
    ExceptionNoteView? LastNote, ExceptionDriftView? Drift, IReadOnlyList<ExceptionNoteView>? Notes = null,
    IReadOnlyList<ExceptionHistoryView>? History = null);

/// <summary>A page of exceptions; pass <c>next</c> as <c>after</c> for the following page.</summary>
public sealed record ExceptionListPage(IReadOnlyList<ExceptionItemView> Items, string? Next);

/// <summary>Body of PATCH /v1/exceptions/{key}: a new status and/or assignee (null unassigns).</summary>
public sealed record ExceptionPatchRequest(string? Status, string? Assignee);

/// <summary>Body of POST /v1/exceptions/{key}/notes.</summary>
public sealed record ExceptionNoteRequest(string Author, string Text);
