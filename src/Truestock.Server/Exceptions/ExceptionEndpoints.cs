using System.Globalization;
using System.Text.Json;
using Truestock.Server.Http;
using Truestock.Server.Storage;

namespace Truestock.Server.Exceptions;

/// <summary>
/// <c>/v1/exceptions</c>: the one list of everything that needs a person, with status, assignee, notes and the audit
/// trail. Scope admin. The engine-only list's parameters (type, after, limit) and fields keep their meaning.
/// </summary>
internal static class ExceptionEndpoints
{
    private const int PageSizeDefault = 100;
    private const int PageSizeMax = 1000;

    /// <summary>Registers the workflow's services (the Raise API for the host, and who made a change).</summary>
    public static IServiceCollection AddExceptionWorkflow(this IServiceCollection services)
    {
        // A factory, because the workflow has a second constructor for tests that the container must not consider.
        services.AddSingleton(sp => new ExceptionWorkflow(sp.GetRequiredService<Engine.Sequencer>(), sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<ExceptionActors>();
        return services;
    }

    public static void MapExceptionWorkflow(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/exceptions").WithTags("Exceptions").RequireScope(Scopes.Admin);
        group.MapGet("", List).Produces<ExceptionListPage>()
            .WithSummary("Everything that needs a person, oldest first: engine exceptions (oversell, negative-on-hand, clamp, sequence-gap), "
                + "channel and ERP dead letters, and drift raised by reconciliation. Filters: kind (or type), sku, location, channel, "
                + "status (comma-separated), assignee; paging: after, limit (1–1000).");
        group.MapGet("/{key}", GetOne).Produces<ExceptionItemView>()
            .WithSummary("One exception with its notes and audit trail (keys: engine:{id}, drift:{id}, erp:{ledgerId}, channel:{channelId}:{sku}).");
        group.MapPatch("/{key}", Patch).Accepts<ExceptionPatchRequest>("application/json").Produces<ExceptionItemView>()
            .WithSummary("Changes status (open → acknowledged → resolved, resolved → open) and/or assignee (null unassigns); "
                + "409 for an illegal change. A dead letter is resolved by replaying or discarding it.");
        group.MapPost("/{key}/notes", PostNote).Accepts<ExceptionNoteRequest>("application/json").Produces<ExceptionItemView>(201)
            .WithSummary("Adds a note { author (1–128), text (1–2000) } to the exception.");
    }

    private static IResult List(string? type, string? kind, string? sku, string? location, string? channel, string? status, string? assignee,
        string? after, string? limit, ExceptionWorkflow workflow, TimeProvider time)
    {
        var input = new JsonInput();
        if (type is not null && !JsonInput.IsId(type))
        {
            input.Invalid("type", "must be an exception kind such as oversell, negative-on-hand, clamp, sequence-gap, drift, channel-dead-letter or erp-dead-letter.");
        }
        if (kind is not null && !JsonInput.IsId(kind))
        {
            input.Invalid("kind", "must be an exception kind such as oversell, negative-on-hand, clamp, sequence-gap, drift, channel-dead-letter or erp-dead-letter.");
        }
        else if (kind is not null && type is not null && kind != type)
        {
            input.Invalid("kind", "is another name for type; give one of them, or the same value to both.");
        }
        if (sku is not null && !JsonInput.IsSku(sku))
        {
            input.Invalid("sku", "must be 1–64 characters without control characters.");
        }
        if (location is not null && !JsonInput.IsId(location))
        {
            input.Invalid("location", "must be a location id (1–64 characters of A–Z, a–z, 0–9, '.', '_', ':' or '-').");
        }
        if (channel is not null && !JsonInput.IsId(channel))
        {
            input.Invalid("channel", "must be a channel id (1–64 characters of A–Z, a–z, 0–9, '.', '_', ':' or '-').");
        }
        if (assignee is not null && !IsPerson(assignee))
        {
            input.Invalid("assignee", $"must be 1–{ExceptionLimits.PersonLengthMax} characters without control characters.");
        }
        var (open, acknowledged, resolved) = (status is null, status is null, status is null);
        if (status is not null)
        {
            foreach (var s in status.Split(','))
            {
                switch (s.Trim())
                {
                    case ExceptionWorkflow.Open: open = true; break;
                    case ExceptionWorkflow.Acknowledged: acknowledged = true; break;
                    case ExceptionWorkflow.Resolved: resolved = true; break;
                    default: input.Invalid("status", "must be open, acknowledged or resolved, or several of them separated by commas."); break;
                }
            }
        }
        var pageSize = PageSizeDefault;
        if (limit is not null && (!int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out pageSize) || pageSize < 1 || pageSize > PageSizeMax))
        {
            input.Invalid("limit", $"must be a whole number from 1 to {PageSizeMax}.");
        }
        var position = ExceptionPosition.Start;
        if (after is not null)
        {
            if (long.TryParse(after, NumberStyles.None, CultureInfo.InvariantCulture, out var engineId) && engineId >= 0)
            {
                position = workflow.PositionAfterEngine(engineId);
            }
            else if (ExceptionCursor.Decode(after) is { } decoded)
            {
                position = decoded;
            }
            else
            {
                input.Invalid("after", "must be a cursor returned as 'next' by a previous page.");
            }
        }
        if (input.Result() is { } invalid)
        {
            return invalid;
        }
        var filter = new ExceptionFilter(kind ?? type, sku, location, channel, assignee, open, acknowledged, resolved);
        var (items, next) = workflow.List(filter, position, pageSize);
        var notes = workflow.NoteSummaries(items);
        var now = time.GetUtcNow();
        var views = items.Select(i => View(i, now, notes)).ToArray();
        return Results.Ok(new ExceptionListPage(views, next is null ? null : ExceptionCursor.Encode(next)));
    }

    private static IResult GetOne(string key, ExceptionWorkflow workflow, TimeProvider time)
    {
        key = UnescapeSlashes(key);
        return workflow.Find(key) is { } item ? Results.Ok(Detail(item, workflow, time)) : UnknownException(key);
    }

    private static async Task<IResult> Patch(string key, HttpContext http, ExceptionWorkflow workflow, ExceptionActors actors, TimeProvider time)
    {
        key = UnescapeSlashes(key);
        var (doc, error) = await JsonInput.ReadObject(http.Request, ExceptionLimits.BodyBytesMax);
        if (error is not null)
        {
            return error;
        }
        using var _ = doc;
        var root = doc!.RootElement;
        var input = new JsonInput();
        var status = input.String(root, "status", "status", required: false, 32);
        if (status is not null and not (ExceptionWorkflow.Open or ExceptionWorkflow.Acknowledged or ExceptionWorkflow.Resolved))
        {
            input.Invalid("status", "must be open, acknowledged or resolved.");
        }
        var assigneeGiven = root.TryGetProperty("assignee", out var assigneeElement);
        string? assignee = null;
        if (assigneeGiven && assigneeElement.ValueKind != JsonValueKind.Null)
        {
            assignee = input.String(root, "assignee", "assignee", required: true, ExceptionLimits.PersonLengthMax);
        }
        if (status is null && !assigneeGiven && !input.HasErrors)
        {
            input.Invalid("status", "give a status and/or an assignee (null unassigns).");
        }
        if (input.Result() is { } invalid)
        {
            return invalid;
        }
        var outcome = workflow.Change(key, status, assigneeGiven, assignee, actors.Of(http));
        return outcome.Item is { } item && outcome.Rejection == WorkflowRejection.None
            ? Results.Ok(Detail(item, workflow, time))
            : Rejected(key, status, outcome);
    }

    private static async Task<IResult> PostNote(string key, HttpContext http, ExceptionWorkflow workflow, ExceptionActors actors, TimeProvider time)
    {
        key = UnescapeSlashes(key);
        var (doc, error) = await JsonInput.ReadObject(http.Request, ExceptionLimits.BodyBytesMax);
        if (error is not null)
        {
            return error;
        }
        using var _ = doc;
        var root = doc!.RootElement;
        var input = new JsonInput();
        var author = input.String(root, "author", "author", required: true, ExceptionLimits.PersonLengthMax);
        var text = NoteText(root, input);
        if (input.Result() is { } invalid)
        {
            return invalid;
        }
        var outcome = workflow.AddNote(key, author!, text!, actors.Of(http));
        return outcome.Item is { } item && outcome.Rejection == WorkflowRejection.None
            ? Results.Created($"/v1/exceptions/{Uri.EscapeDataString(key)}", Detail(item, workflow, time))
            : Rejected(key, null, outcome);
    }

    /// <summary>A note's text: 1–2000 characters; line breaks and tabs are allowed, other control characters are not.</summary>
    private static string? NoteText(JsonElement root, JsonInput input)
    {
        if (!root.TryGetProperty("text", out var v) || v.ValueKind == JsonValueKind.Null)
        {
            input.Invalid("text", "is required.");
            return null;
        }
        if (v.ValueKind != JsonValueKind.String)
        {
            input.Malformed("text", "must be a string.");
            return null;
        }
        var text = v.GetString()!;
        if (text.Length is 0 or > ExceptionLimits.NoteTextLengthMax || string.IsNullOrWhiteSpace(text))
        {
            input.Invalid("text", $"must be 1–{ExceptionLimits.NoteTextLengthMax} characters, not only spaces.");
            return null;
        }
        if (text.Any(c => char.IsControl(c) && c is not ('\n' or '\r' or '\t')))
        {
            input.Invalid("text", "must not contain control characters other than line breaks and tabs.");
            return null;
        }
        return text;
    }

    private static IResult Rejected(string key, string? requested, WorkflowOutcome outcome)
    {
        var detail = outcome.Detail ?? "The change was refused.";
        return outcome.Rejection switch
        {
            WorkflowRejection.NotFound => UnknownException(key),
            WorkflowRejection.IllegalTransition => Problems.Conflict("illegal-transition", "Illegal status change.", detail, Extensions(outcome, requested)),
            WorkflowRejection.DeadLetterNeedsReplay => Problems.Conflict("dead-letter-resolves-by-replay", "Illegal status change.", detail,
                Extensions(outcome, requested)),
            WorkflowRejection.DeadLetterCannotReopen => Problems.Conflict("dead-letter-resolved", "Illegal status change.", detail,
                Extensions(outcome, requested)),
            WorkflowRejection.TooManyNotes => Problems.Conflict("too-many-notes", "Too many notes.", detail),
            _ => Problems.Conflict("concurrent-change", "Changed concurrently.", detail),
        };
    }

    private static Dictionary<string, object?> Extensions(WorkflowOutcome outcome, string? requested) => new()
    {
        ["exceptionStatus"] = outcome.Item?.Status,
        ["requestedStatus"] = requested,
        ["nextStatuses"] = outcome.Item is { } item ? ExceptionWorkflow.NextStatuses(item) : Array.Empty<string>(),
    };

    private static IResult UnknownException(string key) =>
        Problems.NotFound("unknown-exception", $"There is no exception '{key}' (keys look like engine:12, drift:3, erp:45 or channel:web:SKU-1).");

    private static ExceptionItemView Detail(ExceptionItem item, ExceptionWorkflow workflow, TimeProvider time)
    {
        var history = workflow.History(item.Key);
        var notes = history.Where(h => h.Action == "note" && h.RaisedAtMs == item.RaisedAtMs)
            .Select(h => new ExceptionNoteView(h.NoteAuthor ?? "", h.NoteText ?? "", Time(h.AtMs), h.Actor)).ToArray();
        var summaries = workflow.NoteSummaries([item]);
        return View(item, time.GetUtcNow(), summaries) with
        {
            Notes = notes,
            History = history.Select(h => new ExceptionHistoryView(Time(h.AtMs), h.Actor, h.Action, Time(h.RaisedAtMs), h.FromStatus, h.ToStatus,
                h.Action == "update" ? h.AssigneeChanged : null, h.FromAssignee, h.ToAssignee, h.NoteAuthor, h.NoteText)).ToArray(),
        };
    }

    private static ExceptionItemView View(ExceptionItem i, DateTimeOffset now, IReadOnlyDictionary<string, List<NoteSummary>> notes)
    {
        var summary = notes.GetValueOrDefault(i.Key)?.FirstOrDefault(n => n.RaisedAtMs == i.RaisedAtMs);
        DateTimeOffset? resolvedAt = i.ResolvedAtMs is { } r ? Time(r) : null;
        var age = Math.Max(0, ((i.Status == ExceptionWorkflow.Resolved && resolvedAt is { } end ? end : now) - i.RaisedAt).TotalSeconds);
        return new ExceptionItemView(
            i.Key,
            i.Source == ExceptionSource.Engine ? i.RefId : null,
            i.Kind,
            i.Kind,
            i.Sku,
            i.LocationId,
            i.ChannelId,
            i.EventId,
            i.ReservationId,
            i.Origin,
            i.Source == ExceptionSource.Erp ? i.RefId : null,
            i.MovementType,
            i.Quantity,
            i.Detail,
            i.RaisedAt,
            i.RaisedAt,
            Math.Round(age, 3),
            i.Status,
            i.Assignee,
            i.Status == ExceptionWorkflow.Resolved ? resolvedAt : null,
            ExceptionWorkflow.NextStatuses(i),
            (int)(summary?.Count ?? 0),
            summary is null ? null : new ExceptionNoteView(summary.Author, summary.Text, Time(summary.AtMs), summary.Actor),
            i.Source == ExceptionSource.Drift
                ? new ExceptionDriftView(i.Expected, i.Reported, i.Origin, i.Reference, i.Occurrences, Time(i.LastSeenAtMs ?? i.RaisedAtMs))
                : null);
    }

    private static DateTimeOffset Time(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);

    private static bool IsPerson(string s) => s.Length is > 0 and <= ExceptionLimits.PersonLengthMax && !s.Any(char.IsControl);

    /// <summary>
    /// Kestrel decodes every escape of the path except %2F, so a SKU with a slash arrives escaped inside the key; the key
    /// names the SKU as it is.
    /// </summary>
    private static string UnescapeSlashes(string key) => key.Replace("%2F", "/", StringComparison.OrdinalIgnoreCase);
}
