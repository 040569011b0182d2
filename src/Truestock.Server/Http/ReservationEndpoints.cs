using Microsoft.Extensions.Options;
using Truestock.Core;
using Truestock.Server.Engine;

namespace Truestock.Server.Http;

/// <summary>A requested line of POST /v1/reservations.</summary>
public sealed record ReservationLineRequestBody(string Sku, long Quantity, string? LocationId);

/// <summary>Body of POST /v1/reservations.</summary>
public sealed record ReservationRequest(string ReservationId, string ChannelId, int? TtlSeconds, string? CorrelationId,
    IReadOnlyList<ReservationLineRequestBody> Lines);

internal static class ReservationEndpoints
{
    public static void MapReservations(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/reservations").WithTags("Reservations");
        group.MapPost("", Create).RequireScope(Scopes.ReservationsWrite)
            .Accepts<ReservationRequest>("application/json").Produces<ReservationView>(201).Produces<ReservationView>(200)
            .WithSummary("Hold stock all-or-nothing (201); the same request again answers 200 with the current state.");
        group.MapPost("/{reservationId}/commit", (string reservationId, HttpContext http, Sequencer engine, HubMetrics metrics) =>
                Transition(reservationId, CommandKinds.CommitReservation, http, engine, metrics))
            .RequireScope(Scopes.ReservationsWrite).Produces<ReservationView>()
            .WithSummary("Commit a held reservation: units move from reserved to allocated.");
        group.MapPost("/{reservationId}/release", (string reservationId, HttpContext http, Sequencer engine, HubMetrics metrics) =>
                Transition(reservationId, CommandKinds.ReleaseReservation, http, engine, metrics))
            .RequireScope(Scopes.ReservationsWrite).Produces<ReservationView>()
            .WithSummary("Release a held or committed reservation: its unshipped units return to available.");
        group.MapGet("/{reservationId}", async (string reservationId, Sequencer engine) =>
                (await engine.Read((s, _) => s.FindReservation(reservationId) is { } r ? Views.Of(r) : null)
                    ?? (engine.HasForgotten ? TryArchived(engine, reservationId) : null)) is { } view
                    ? Results.Ok(view)
                    : Problems.NotFound("unknown-reservation", $"Reservation '{reservationId}' does not exist."))
            .RequireScope(Scopes.AvailabilityRead).Produces<ReservationView>().WithSummary("A reservation and its status.");
    }

    private static async Task<IResult> Create(HttpContext http, Sequencer engine, HubMetrics metrics, IOptions<HubOptions> options)
    {
        var (doc, error) = await JsonInput.ReadObject(http.Request, options.Value.RequestBodyBytesMax);
        if (error is not null)
        {
            return error;
        }
        using var _ = doc;
        var input = new JsonInput();
        var root = doc!.RootElement;
        var reservationId = input.Id(root, "reservationId", "reservationId", required: true);
        var channelId = input.Id(root, "channelId", "channelId", required: true);
        var ttl = input.Long(root, "ttlSeconds", "ttlSeconds", required: false, 1, Limits.TtlSecondsMax) ?? Limits.TtlSecondsDefault;
        var correlationId = input.String(root, "correlationId", "correlationId", required: false, 128) ?? http.CorrelationId();
        var lines = new List<ReservationLineRequest>();
        if (input.Array(root, "lines", "lines", required: true, 1, Limits.ReservationLinesMax) is { } array)
        {
            var i = 0;
            foreach (var item in array.EnumerateArray())
            {
                var path = $"lines[{i++}]";
                if (!input.IsObject(item, path))
                {
                    continue;
                }
                var sku = input.Sku(item, "sku", path + ".sku");
                var quantity = input.Long(item, "quantity", path + ".quantity", required: true, 1, Limits.QuantityMax);
                var locationId = input.Id(item, "locationId", path + ".locationId", required: false);
                if (sku is not null && quantity is not null)
                {
                    lines.Add(new ReservationLineRequest(sku, quantity.Value, locationId));
                }
            }
        }
        if (input.Result() is { } invalid)
        {
            return invalid;
        }
        var fingerprintParts = new List<object?> { channelId, ttl };
        foreach (var l in lines)
        {
            fingerprintParts.Add(l.Sku);
            fingerprintParts.Add(l.Quantity);
            fingerprintParts.Add(l.LocationId);
        }
        var command = new CreateReservation
        {
            ReservationId = reservationId!,
            ChannelId = channelId!,
            TtlSeconds = (int)ttl,
            CorrelationId = correlationId,
            Lines = lines,
            Fingerprint = Fingerprints.Of([.. fingerprintParts]),
        };
        var (outcome, view) = await SubmitCreate(engine, metrics, command);
        return outcome.Result switch
        {
            ReservationResult.Created => Results.Created($"/v1/reservations/{command.ReservationId}", view),
            ReservationResult.Existing => Results.Ok(view),
            ReservationResult.Forgotten => Results.Ok(Archived(engine, command.ReservationId)),
            ReservationResult.Insufficient => Problems.Conflict("insufficient-stock", "Insufficient stock.",
                "Not enough stock for: " + string.Join(", ", outcome.Shortages!.Select(s => $"{s.Sku} (requested {s.Requested}, available {s.Available})")) + ". Nothing was held.",
                [new("shortages", outcome.Shortages!.Select(s => new { sku = s.Sku, requested = s.Requested, available = s.Available }).ToArray())]),
            _ => Failure(outcome),
        };
    }

    /// <summary>
    /// Decides a reservation create through the engine and returns once it is durable. The
    /// durable idempotency lookup is made here, so every way in (HTTP, Shopify webhooks) keeps a
    /// reservation id a duplicate for ever.
    /// </summary>
    internal static async Task<(ReservationOutcome Outcome, ReservationView? View)> SubmitCreate(Sequencer engine, HubMetrics metrics,
        CreateReservation command)
    {
        var archived = engine.HasForgotten ? engine.Journal.FindReservation(command.ReservationId) : null;
        var (outcome, view) = await engine.Submit(new Work<CreateReservation, (ReservationOutcome, ReservationView?)>(
            CommandKinds.CreateReservation, command with { PriorFingerprint = archived?.Fingerprint },
            static (s, c, now, fx) =>
            {
                var o = s.CreateReservation(c, now, fx);
                return (o, o.Reservation is { } r ? Views.Of(r) : null);
            },
            static r => r.Item1.Journaled));
        metrics.Reservation((int)outcome.Result);
        return (outcome, view);
    }

    /// <summary>Decides a commit (<see cref="CommandKinds.CommitReservation"/>) or release through the engine; returns once durable.</summary>
    internal static async Task<(ReservationOutcome Outcome, ReservationView? View)> SubmitTransition(Sequencer engine, HubMetrics metrics,
        string kind, string reservationId, string correlationId)
    {
        var transition = new ReservationTransition(reservationId, correlationId);
        var (outcome, view) = await engine.Submit(new Work<ReservationTransition, (ReservationOutcome, ReservationView?)>(kind, transition,
            kind == CommandKinds.CommitReservation
                ? static (s, t, now, fx) => WithView(s.CommitReservation(t.ReservationId, now, t.CorrelationId, fx))
                : static (s, t, now, fx) => WithView(s.ReleaseReservation(t.ReservationId, now, t.CorrelationId, fx)),
            static r => r.Item1.Journaled));
        metrics.Reservation((int)outcome.Result);
        return (outcome, view);
    }

    private static async Task<IResult> Transition(string reservationId, string kind, HttpContext http, Sequencer engine, HubMetrics metrics)
    {
        var (outcome, view) = await SubmitTransition(engine, metrics, kind, reservationId, http.CorrelationId());
        if (outcome.Result == ReservationResult.NotFound && engine.HasForgotten && TryArchived(engine, reservationId) is { } ended)
        {
            // The reservation ended long ago and left memory: answer from its archived final state.
            var same = kind == CommandKinds.CommitReservation ? ended.Status == "fulfilled" : ended.Status == "released";
            return same
                ? Results.Ok(ended)
                : Problems.Conflict("illegal-state", "Illegal state change.", $"Reservation '{reservationId}' is {ended.Status}.",
                    [new("reservationStatus", ended.Status)]);
        }
        return outcome.Result is ReservationResult.Changed or ReservationResult.Unchanged ? Results.Ok(view) : Failure(outcome);
    }

    /// <summary>The final state of a reservation that ended long ago and left memory, or null.</summary>
    internal static ReservationView? TryArchived(Sequencer engine, string reservationId) =>
        engine.Journal.FindReservation(reservationId)?.ArchivedView is { } json
            ? System.Text.Json.JsonSerializer.Deserialize<ReservationView>(json, CommandKinds.Json)
            : null;

    private static ReservationView Archived(Sequencer engine, string reservationId) =>
        TryArchived(engine, reservationId)
        ?? throw new InvalidOperationException($"Reservation '{reservationId}' left memory but has no archived state.");

    private static (ReservationOutcome, ReservationView?) WithView(ReservationOutcome o) => (o, o.Reservation is { } r ? Views.Of(r) : null);

    private static IResult Failure(ReservationOutcome o) => o.Result switch
    {
        ReservationResult.Conflict => Problems.Conflict("idempotency-conflict", "Idempotency key reused.", o.ErrorDetail!),
        ReservationResult.NotFound => Problems.NotFound("unknown-reservation", o.ErrorDetail!),
        ReservationResult.IllegalState => Problems.Conflict("illegal-state", "Illegal state change.", o.ErrorDetail!,
            [new("reservationStatus", Shard.Name(o.Reservation!.Status))]),
        ReservationResult.Invalid => Problems.Unprocessable(o.ErrorType!, o.ErrorDetail!,
            o.ErrorType == RejectionTypes.UnknownChannel ? "channelId" : "lines"),
        _ => throw new InvalidOperationException($"Unexpected reservation outcome {o.Result}."),
    };
}
