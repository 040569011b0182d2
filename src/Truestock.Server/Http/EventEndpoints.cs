using System.Text.Json;
using Microsoft.Extensions.Options;
using Truestock.Core;
using Truestock.Server.Engine;

namespace Truestock.Server.Http;

/// <summary>One event in a POST /v1/events request (see the inventory model for each field).</summary>
public sealed record EventRequest(string EventId, string Type, string Sku, string LocationId, long Quantity, DateTimeOffset OccurredAt,
    string Source, long? SourceSeq, string? CorrelationId, string? Reason, string? ReservationId, string? ToLocationId, string? Disposition);

/// <summary>Body of POST /v1/events.</summary>
public sealed record EventsRequest(IReadOnlyList<EventRequest> Events);

internal static class EventEndpoints
{
    public static void MapEvents(this IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/events", PostEvents).WithTags("Events").RequireScope(Scopes.EventsWrite)
            .Accepts<EventsRequest>("application/json").Produces<EventsResponse>()
            .WithSummary("Record up to 1,000 stock events; each is applied, duplicate, superseded, stale or rejected, in order.");
    }

    private static async Task<IResult> PostEvents(HttpContext http, Sequencer engine, HubMetrics metrics, IOptions<HubOptions> options)
    {
        var (doc, error) = await JsonInput.ReadObject(http.Request, options.Value.RequestBodyBytesMax);
        if (error is not null)
        {
            return error;
        }
        using var _ = doc;
        var input = new JsonInput();
        var events = ParseBatch(doc!.RootElement, input, http.CorrelationId());
        if (input.Result() is { } invalid)
        {
            return invalid;
        }
        var outcomes = await Apply(engine, metrics, events);
        var results = new EventResultView[outcomes.Length];
        for (var i = 0; i < outcomes.Length; i++)
        {
            var o = outcomes[i];
            results[i] = new EventResultView(events[i].EventId, Shard.StatusName(o.Status),
                o.ErrorType is null ? null : new EventErrorView(Problems.TypeBase + o.ErrorType, o.ErrorDetail!));
        }
        return Results.Ok(new EventsResponse(results));
    }

    /// <summary>Parses <c>{ "events": [ 1 to 1,000 events ] }</c>; problems are collected in <paramref name="input"/>.</summary>
    public static List<StockEvent> ParseBatch(JsonElement root, JsonInput input, string correlationId)
    {
        var events = new List<StockEvent>();
        if (input.Array(root, "events", "events", required: true, 1, Limits.EventsPerRequestMax) is { } array)
        {
            var i = 0;
            foreach (var item in array.EnumerateArray())
            {
                var path = $"events[{i++}]";
                if (input.IsObject(item, path) && ParseEvent(item, path, input, correlationId) is { } e)
                {
                    events.Add(e);
                }
            }
        }
        return events;
    }

    /// <summary>
    /// Decides validated events through the engine and returns once they are durable. Every way
    /// in (HTTP, the message broker) comes through here, with the same idempotency and results.
    /// </summary>
    public static async Task<EventOutcome[]> Apply(Sequencer engine, HubMetrics metrics, List<StockEvent> events)
    {
        if (engine.HasForgotten)
        {
            // Ids older than the in-memory retention are looked up durably, so a duplicate stays a
            // duplicate for ever. An id missing here was never accepted, so there is no race.
            var known = engine.Journal.FindEventFingerprints(events.Select(e => e.EventId).Distinct().ToArray());
            for (var i = 0; i < events.Count && known.Count > 0; i++)
            {
                if (known.TryGetValue(events[i].EventId, out var prior))
                {
                    events[i] = events[i] with { PriorFingerprint = prior };
                }
            }
        }
        var outcomes = await engine.Submit(new Work<StockEvent[], EventOutcome[]>(CommandKinds.Events, events.ToArray(),
            CommandKinds.DecideEvents, static r => r.Any(o => o.Journaled)));
        foreach (var o in outcomes)
        {
            metrics.Event((int)o.Status);
        }
        return outcomes;
    }

    /// <summary>
    /// Validates one event's shape and the type's quantity rules; state-dependent checks are the engine's.
    /// Problems are collected in <paramref name="input"/> under <paramref name="path"/>; the CSV import
    /// maps each row to this JSON shape and calls it too, so both ways in apply the same rules.
    /// </summary>
    internal static StockEvent? ParseEvent(JsonElement e, string path, JsonInput input, string requestCorrelationId)
    {
        var eventId = input.Id(e, "eventId", path + ".eventId", required: true);
        var typeText = input.String(e, "type", path + ".type", required: true, 32);
        var type = EventType.Received;
        if (typeText is not null && !Shard.TryParseType(typeText, out type))
        {
            input.Invalid(path + ".type", "must be one of received, sold, adjusted, counted, damaged, written_off, return_received, inspected, transfer_shipped, transfer_received, shipped.");
            typeText = null;
        }
        var sku = input.Sku(e, "sku", path + ".sku");
        var locationId = input.Id(e, "locationId", path + ".locationId", required: true);
        var quantity = input.Long(e, "quantity", path + ".quantity", required: true, -Limits.QuantityMax, Limits.QuantityMax);
        var occurredAt = input.Timestamp(e, "occurredAt", path + ".occurredAt", required: true);
        var source = input.String(e, "source", path + ".source", required: true, Limits.IdLengthMax);
        var sourceSeq = input.Long(e, "sourceSeq", path + ".sourceSeq", required: false, 0, long.MaxValue);
        var correlationId = input.String(e, "correlationId", path + ".correlationId", required: false, 128);
        var reason = input.String(e, "reason", path + ".reason", required: type == EventType.Adjusted && typeText is not null);
        var reservationId = input.Id(e, "reservationId", path + ".reservationId", required: false);
        var toLocationId = input.Id(e, "toLocationId", path + ".toLocationId", required: type == EventType.TransferShipped && typeText is not null);
        var dispositionText = input.String(e, "disposition", path + ".disposition", required: type == EventType.Inspected && typeText is not null, 16);
        var disposition = Disposition.None;
        if (dispositionText is not null)
        {
            if (type != EventType.Inspected)
            {
                input.Invalid(path + ".disposition", "is only allowed on inspected events.");
            }
            else
            {
                disposition = dispositionText switch
                {
                    "restock" => Disposition.Restock,
                    "damaged" => Disposition.Damaged,
                    "scrap" => Disposition.Scrap,
                    _ => Disposition.None,
                };
                if (disposition == Disposition.None)
                {
                    input.Invalid(path + ".disposition", "must be one of restock, damaged, scrap.");
                }
            }
        }
        if (reservationId is not null && type != EventType.Shipped)
        {
            input.Invalid(path + ".reservationId", "is only allowed on shipped events.");
        }
        if (toLocationId is not null && type != EventType.TransferShipped)
        {
            input.Invalid(path + ".toLocationId", "is only allowed on transfer_shipped events.");
        }
        if (toLocationId is not null && toLocationId == locationId)
        {
            input.Invalid(path + ".toLocationId", "must differ from locationId.");
        }
        if (quantity is { } q && typeText is not null)
        {
            var rule = type switch
            {
                EventType.Adjusted => q != 0 ? null : "must not be 0 for adjusted events.",
                EventType.Counted => q >= 0 ? null : "must be 0 or more for counted events.",
                _ => q > 0 ? null : $"must be more than 0 for {typeText} events.",
            };
            if (rule is not null)
            {
                input.Invalid(path + ".quantity", rule);
            }
        }
        if (input.HasErrors || eventId is null || sku is null || locationId is null || quantity is null || occurredAt is null || source is null)
        {
            return null;
        }
        return Create(eventId, type, sku, locationId, quantity.Value, occurredAt.Value, source, correlationId ?? requestCorrelationId,
            sourceSeq, reason, reservationId, toLocationId, disposition);
    }

    /// <summary>
    /// Builds a validated event with its content fingerprint. Every way in (HTTP, broker, files,
    /// webhooks, polling) builds events here, so the same event sent two ways is a duplicate.
    /// </summary>
    public static StockEvent Create(string eventId, EventType type, string sku, string locationId, long quantity, DateTimeOffset occurredAt,
        string source, string correlationId, long? sourceSeq = null, string? reason = null, string? reservationId = null,
        string? toLocationId = null, Disposition disposition = Disposition.None) => new()
        {
            EventId = eventId,
            Type = type,
            Sku = sku,
            LocationId = locationId,
            Quantity = quantity,
            OccurredAt = occurredAt,
            Source = source,
            SourceSeq = sourceSeq,
            CorrelationId = correlationId,
            Reason = reason,
            ReservationId = reservationId,
            ToLocationId = toLocationId,
            Disposition = disposition,
            Fingerprint = Fingerprints.Of(type, sku, locationId, quantity, occurredAt, source, sourceSeq, reason,
                reservationId, toLocationId, disposition),
        };
}
