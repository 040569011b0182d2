using System.Security.Cryptography;
using System.Text;
using Truestock.Core;
using Truestock.Server.Engine;
using Truestock.Server.Http;

namespace Truestock.Server.Ingestion;

/// <summary>A business rule that refused part or all of a delivery; the delivery is still answered 200.</summary>
public sealed record ShopifyRejection(string Type, string Detail);

/// <summary>The 200 answer to a Shopify delivery: what the hub did with it.</summary>
public sealed record ShopifyWebhookReply(string SourceId, string Topic, string Outcome, string? OrderId, string? ReservationId,
    string? ReservationStatus, IReadOnlyList<EventResultView> Events, IReadOnlyList<ShopifyRejection> Rejections, IReadOnlyList<string> Notes);

/// <summary>A delivery that must not be answered 2xx: the status, problem type and why.</summary>
internal sealed record ShopifyStop(int Status, string Slug, string Title, string Detail, ShopifyDeliveryOutcome Outcome);

/// <summary>One verified delivery being decided, and what came of it so far.</summary>
internal sealed class ShopifyDelivery(string sourceId, ShopifySourceOptions source, string topic, string webhookId, string correlationId)
{
    public string SourceId { get; } = sourceId;
    public ShopifySourceOptions Source { get; } = source;
    public string Topic { get; } = topic;
    public string WebhookId { get; } = webhookId;
    public string CorrelationId { get; } = correlationId;
    public string? OrderId { get; set; }
    public string? ReservationId { get; set; }
    public ReservationView? Reservation { get; set; }
    public List<EventResultView> Events { get; } = [];
    public List<ShopifyRejection> Rejections { get; } = [];
    public List<string> Notes { get; } = [];

    /// <summary>Something was journaled by this delivery.</summary>
    public bool Changed { get; set; }

    /// <summary>Some of it had been decided before (a redelivery, or another topic for the same order).</summary>
    public bool Repeated { get; set; }

    public ShopifyDeliveryOutcome Outcome => Rejections.Count > 0 ? ShopifyDeliveryOutcome.Rejected
        : Changed ? ShopifyDeliveryOutcome.Applied
        : Repeated ? ShopifyDeliveryOutcome.Duplicate
        : ShopifyDeliveryOutcome.Ignored;

    public ShopifyWebhookReply Reply(ShopifyDeliveryOutcome outcome) => new(SourceId, Topic, ShopifyWebhookMetrics.Name(outcome), OrderId,
        ReservationId, Reservation?.Status, Events, Rejections, Notes);
}

/// <summary>
/// Maps verified Shopify payloads onto the engine (the mapping table is in docs/ingestion.md):
/// an order becomes a reservation, created and committed at once; a cancellation releases it;
/// a fulfillment ships against it; a refund with restock type "return" receives the units into
/// inspection. Every id the hub records is derived from Shopify's own ids, so a redelivery, a
/// delivery of another topic for the same order, or one long after the webhook id was forgotten
/// is decided as a duplicate by the engine's durable idempotency.
/// </summary>
internal sealed class ShopifyWebhookHandler(Sequencer engine, HubMetrics metrics, TimeProvider time, ILogger<ShopifyWebhookHandler> log)
{
    private const string Held = "held";
    private const string Committed = "committed";
    private const string Fulfilled = "fulfilled";

    /// <summary>
    /// orders/create, orders/fulfilled, orders/partially_fulfilled: the order is reserved and
    /// committed (unless it already was), then the fulfillments it carries are shipped.
    /// orders/cancelled: the fulfillments it carries are shipped first (so that shipped units
    /// leave allocated), then the reservation is released; when the order never arrived, an empty
    /// reservation is created and released in its place, so that a late orders/create holds nothing.
    /// </summary>
    public async Task<ShopifyStop?> Order(ShopifyDelivery d, ShopifyOrder order, bool cancelled)
    {
        d.OrderId = order.Id;
        d.ReservationId = ReservationIdOf(d.SourceId, order.Id);
        if (order.UntrackedLines > 0)
        {
            d.Notes.Add($"{order.UntrackedLines} line item(s) without a usable SKU (custom items, gift cards) were skipped.");
        }
        if (cancelled)
        {
            d.Reservation = await Current(d.ReservationId);
            if (d.Reservation is null && await Tombstone(d) is { } stop)
            {
                return stop;
            }
        }
        else if (await EnsureReserved(d, order) is { } stop)
        {
            return stop;
        }
        foreach (var fulfillment in order.Fulfillments)
        {
            if (await Ship(d, fulfillment) is { } stop)
            {
                return stop;
            }
        }
        return cancelled ? await Release(d, "the order was cancelled") : null;
    }

    /// <summary>
    /// fulfillments/create and fulfillments/update: each shipped line becomes a <c>shipped</c>
    /// event against the order's reservation. Before the order has arrived the delivery is refused
    /// with 409 for up to <see cref="ShopifySourceOptions.OrderWaitSecondsMax"/>, so that Shopify
    /// delivers it again once the order is known.
    /// </summary>
    public async Task<ShopifyStop?> Fulfillment(ShopifyDelivery d, ShopifyFulfillment fulfillment)
    {
        d.OrderId = fulfillment.OrderId;
        d.ReservationId = ReservationIdOf(d.SourceId, fulfillment.OrderId);
        d.Reservation = await Current(d.ReservationId);
        if (d.Reservation is null && fulfillment.Status == "success" && fulfillment.Lines.Count > 0)
        {
            var age = time.GetUtcNow() - (fulfillment.CreatedAt ?? time.GetUtcNow());
            var wait = TimeSpan.FromSeconds(Math.Max(0, d.Source.OrderWaitSecondsMax));
            if (age < wait)
            {
                log.LogInformation("Shopify {Topic} for order {OrderId} of source {Source} arrived before the order; asking Shopify to deliver it again (webhook {WebhookId}).",
                    d.Topic, d.OrderId, d.SourceId, d.WebhookId);
                return new ShopifyStop(StatusCodes.Status409Conflict, "order-not-received", "The order has not arrived yet.",
                    $"Fulfillment {fulfillment.Id} belongs to order {fulfillment.OrderId}, whose orders/create the hub has not received yet. " +
                    "Nothing was applied; Shopify delivers this webhook again and it applies once the order is known.",
                    ShopifyDeliveryOutcome.Deferred);
            }
            // The order is overdue: ship what physically left, and leave an ended reservation so
            // that an orders/create arriving even later holds nothing for units already gone.
            d.Notes.Add($"The order did not arrive within {wait.TotalSeconds:0} s of the fulfillment; its units were shipped without a reservation.");
            if (await Tombstone(d) is { } stop)
            {
                return stop;
            }
        }
        return await Ship(d, fulfillment);
    }

    /// <summary>
    /// refunds/create: lines with restock type "return" become <c>return_received</c> events
    /// (the units go to inspection, not to sale); lines with restock type "cancel" release the
    /// reservation when they cancel every unit it still allocates; other restock types change
    /// no stock.
    /// </summary>
    public async Task<ShopifyStop?> Refund(ShopifyDelivery d, ShopifyRefund refund)
    {
        d.OrderId = refund.OrderId;
        d.ReservationId = ReservationIdOf(d.SourceId, refund.OrderId);
        var events = new List<StockEvent>();
        var cancelledUnits = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var line in refund.Lines)
        {
            if (line.Sku is null || line.Quantity == 0)
            {
                d.Notes.Add($"Refund line {line.Id} has no usable SKU or no quantity; skipped.");
                continue;
            }
            switch (line.RestockType)
            {
                case "return":
                    var locationId = MapLocation(d.Source, line.LocationId) ?? d.Source.DefaultLocationId;
                    if (locationId is null)
                    {
                        Reject(d, "unmapped-location",
                            $"Refund line {line.Id} restocks {line.Quantity} × '{line.Sku}' at Shopify location {line.LocationId ?? "(none)"}, which maps to no hub location and the source has no DefaultLocationId.");
                        continue;
                    }
                    events.Add(Event(d, DerivedId(d.SourceId, $"r{refund.Id}-{line.Id}"), EventType.ReturnReceived, line.Sku, locationId,
                        line.Quantity, refund.CreatedAt, reservationId: null));
                    break;
                case "cancel":
                    cancelledUnits[line.Sku] = cancelledUnits.GetValueOrDefault(line.Sku) + line.Quantity;
                    break;
                default:
                    d.Notes.Add($"Refund line {line.Id} has restock type '{line.RestockType ?? "(none)"}'; no stock changes.");
                    break;
            }
        }
        if (await Apply(d, events) is { } stop)
        {
            return stop;
        }
        return cancelledUnits.Count > 0 ? await CancelLines(d, cancelledUnits) : null;
    }

    /// <summary>The reservation id of an order: <c>shopify-{sourceId}-{orderId}</c>.</summary>
    public static string ReservationIdOf(string sourceId, string orderId) => DerivedId(sourceId, orderId);

    /// <summary>
    /// <c>shopify-{sourceId}-{suffix}</c> when that is a valid id (1–64 of [A-Za-z0-9._:-]); otherwise
    /// a digest of it, so that a long source id still gives stable, valid ids.
    /// </summary>
    public static string DerivedId(string sourceId, string suffix)
    {
        var id = $"shopify-{sourceId}-{suffix}";
        return JsonInput.IsId(id) ? id : "shopify-h-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(id)))[..40];
    }

    private static string? MapLocation(ShopifySourceOptions source, string? shopifyLocationId) =>
        shopifyLocationId is not null && source.Locations.TryGetValue(shopifyLocationId, out var hub) && !string.IsNullOrWhiteSpace(hub) ? hub : null;

    /// <summary>Creates and commits the order's reservation, unless it exists; a refused one leaves an ended, empty reservation.</summary>
    private async Task<ShopifyStop?> EnsureReserved(ShopifyDelivery d, ShopifyOrder order)
    {
        if (order.Lines.Count == 0)
        {
            d.Reservation = await Current(d.ReservationId!);
            d.Notes.Add("The order has no line item with a SKU; nothing to reserve.");
            return null;
        }
        var locationId = MapLocation(d.Source, order.LocationId) ?? d.Source.DefaultLocationId;
        // One line per SKU: Shopify may list a SKU twice (two variants, a bundle), and the engine ships per SKU and location.
        var lines = order.Lines.GroupBy(l => l.Sku, StringComparer.Ordinal)
            .Select(g => new ReservationLineRequest(g.Key, g.Sum(l => l.Quantity), locationId)).ToList();
        if (lines.Count > Limits.ReservationLinesMax || lines.Any(l => l.Quantity > Limits.QuantityMax))
        {
            Reject(d, "too-many-lines",
                $"Order {order.Id} has {lines.Count} SKUs; a reservation takes at most {Limits.ReservationLinesMax} lines of at most {Limits.QuantityMax} units. Nothing was held.");
            return await Tombstone(d);
        }
        var (outcome, view) = await ReservationEndpoints.SubmitCreate(engine, metrics, Create(d, lines));
        if (outcome.Result == ReservationResult.Insufficient)
        {
            Reject(d, RejectionTypes.InsufficientStock, $"Order {order.Id} could not be reserved; nothing was held. Short: " +
                string.Join(", ", outcome.Shortages!.Select(s => $"'{s.Sku}' (requested {s.Requested}, available {s.Available})")) + ".");
            return await Tombstone(d);
        }
        if (!Settled(d, outcome, view, "a create", out var stop))
        {
            return stop;
        }
        return d.Reservation?.Status == Held ? await Commit(d) : null;
    }

    /// <summary>
    /// Records what creating the order's reservation did, for the outcomes every create shares.
    /// Returns false when the delivery ends here, with the answer to give (null: 200).
    /// </summary>
    private bool Settled(ShopifyDelivery d, ReservationOutcome outcome, ReservationView? view, string what, out ShopifyStop? stop)
    {
        stop = null;
        switch (outcome.Result)
        {
            case ReservationResult.Created:
                d.Changed = true;
                d.Reservation = view;
                return true;
            case ReservationResult.Existing:
                d.Repeated = true;
                d.Reservation = view;
                return true;
            case ReservationResult.Forgotten:
                d.Repeated = true;
                d.Reservation = ReservationEndpoints.TryArchived(engine, d.ReservationId!);
                return false;
            case ReservationResult.Conflict:
                Reject(d, RejectionTypes.IdempotencyConflict, outcome.ErrorDetail!);
                return false;
            case ReservationResult.Invalid:
                stop = Misconfigured(d, outcome.ErrorType!, outcome.ErrorDetail!);
                return false;
            default:
                throw new InvalidOperationException($"Unexpected reservation outcome {outcome.Result} for {what}.");
        }
    }

    /// <summary>
    /// Creates an empty reservation under the order's id and releases it: the marker of an order
    /// that holds nothing (cancelled before it arrived, refused, or overdue). A later orders/create
    /// finds it and holds nothing either.
    /// </summary>
    private async Task<ShopifyStop?> Tombstone(ShopifyDelivery d)
    {
        var (outcome, view) = await ReservationEndpoints.SubmitCreate(engine, metrics, Create(d, []));
        if (!Settled(d, outcome, view, "an empty reservation", out var stop))
        {
            return stop;
        }
        if (d.Reservation is { Status: Held } r)
        {
            // A concurrent delivery of the same order may have reserved it in between; that one is
            // the order's real reservation and is committed, never released, here.
            return r.Lines.Count == 0 ? await Release(d, "the order holds nothing") : await Commit(d);
        }
        return null;
    }

    private CreateReservation Create(ShopifyDelivery d, IReadOnlyList<ReservationLineRequest> lines) => new()
    {
        ReservationId = d.ReservationId!,
        ChannelId = d.Source.ChannelId!,
        // The longest time to live: an order is committed right after it is held, and should the
        // hub stop in between, Shopify's redelivery (within 4 hours) commits it before it expires.
        TtlSeconds = Limits.TtlSecondsMax,
        CorrelationId = d.CorrelationId,
        Lines = lines,
        // The content is the Shopify order itself, not its lines: the reservation made from
        // orders/create and the empty one made from an earlier orders/cancelled are the same
        // order, so whichever comes second is a duplicate rather than a conflict.
        Fingerprint = Fingerprints.Of("shopify-order", d.SourceId, d.OrderId),
    };

    private async Task<ShopifyStop?> Commit(ShopifyDelivery d)
    {
        var (outcome, view) = await ReservationEndpoints.SubmitTransition(engine, metrics, CommandKinds.CommitReservation, d.ReservationId!, d.CorrelationId);
        d.Reservation = view ?? d.Reservation;
        switch (outcome.Result)
        {
            case ReservationResult.Changed:
                d.Changed = true;
                break;
            case ReservationResult.Unchanged:
                d.Repeated = true;
                break;
            case ReservationResult.IllegalState:
                // Released or expired in the meantime (a cancellation won the race): nothing to commit.
                d.Notes.Add($"Reservation {d.ReservationId} is {view?.Status}; not committed.");
                break;
            default:
                throw new InvalidOperationException($"Unexpected reservation outcome {outcome.Result} for a commit.");
        }
        return null;
    }

    private async Task<ShopifyStop?> Release(ShopifyDelivery d, string why)
    {
        var (outcome, view) = await ReservationEndpoints.SubmitTransition(engine, metrics, CommandKinds.ReleaseReservation, d.ReservationId!, d.CorrelationId);
        d.Reservation = view ?? d.Reservation;
        switch (outcome.Result)
        {
            case ReservationResult.Changed:
                d.Changed = true;
                break;
            case ReservationResult.Unchanged:
                d.Repeated = true;
                break;
            case ReservationResult.IllegalState:
                // Fulfilled (everything shipped) or expired (nothing held): there is nothing to return.
                d.Notes.Add($"Reservation {d.ReservationId} is {view?.Status}; nothing to release ({why}).");
                break;
            case ReservationResult.NotFound:
                d.Reservation = ReservationEndpoints.TryArchived(engine, d.ReservationId!);
                d.Repeated = true;
                d.Notes.Add($"Reservation {d.ReservationId} ended long ago ({d.Reservation?.Status ?? "unknown"}); nothing to release.");
                break;
            default:
                throw new InvalidOperationException($"Unexpected reservation outcome {outcome.Result} for a release.");
        }
        return null;
    }

    /// <summary>
    /// Ships a successful fulfillment's lines. A line whose SKU the reservation allocates ships
    /// against it. When Shopify fulfilled it from another (mapped) location than the one the hub
    /// allocated, the allocation is still consumed, and a pair of adjustments moves the unit's
    /// departure to where it really left, so both locations' onHand stay true and no allocation is
    /// left behind. A line the reservation does not hold ships like a sale from the mapped location
    /// or the source's default.
    /// </summary>
    private async Task<ShopifyStop?> Ship(ShopifyDelivery d, ShopifyFulfillment fulfillment)
    {
        if (fulfillment.UntrackedLines > 0)
        {
            d.Notes.Add($"Fulfillment {fulfillment.Id}: {fulfillment.UntrackedLines} line item(s) without a usable SKU were skipped.");
        }
        if (fulfillment.Status != "success")
        {
            // Pending and open fulfillments have not left; cancelled, error and failure ones never will.
            d.Notes.Add($"Fulfillment {fulfillment.Id} is '{fulfillment.Status ?? "(none)"}', not 'success'; nothing shipped.");
            return null;
        }
        if (d.Reservation is { Status: Held })
        {
            // The order is placed (see the commit rule); a held reservation here is one whose commit was interrupted.
            await Commit(d);
        }
        var reservation = d.Reservation is { Status: Committed or Fulfilled } r ? r : null;
        var mapped = MapLocation(d.Source, fulfillment.LocationId);
        var events = new List<StockEvent>(fulfillment.Lines.Count);
        foreach (var line in fulfillment.Lines)
        {
            var eventId = DerivedId(d.SourceId, $"f{fulfillment.Id}-{line.LineItemId}");
            if (reservation?.Lines.FirstOrDefault(l => l.Sku == line.Sku) is { } reserved)
            {
                events.Add(Event(d, eventId, EventType.Shipped, line.Sku, reserved.LocationId, line.Quantity, fulfillment.CreatedAt,
                    reservation.ReservationId));
                if (mapped is not null && mapped != reserved.LocationId)
                {
                    var reason = $"Shopify fulfillment {fulfillment.Id} shipped from {mapped}, not from {reserved.LocationId} where the order was allocated.";
                    events.Add(Event(d, DerivedId(d.SourceId, $"f{fulfillment.Id}-{line.LineItemId}-a"), EventType.Adjusted, line.Sku,
                        reserved.LocationId, line.Quantity, fulfillment.CreatedAt, reservationId: null, reason));
                    events.Add(Event(d, DerivedId(d.SourceId, $"f{fulfillment.Id}-{line.LineItemId}-b"), EventType.Adjusted, line.Sku,
                        mapped, -line.Quantity, fulfillment.CreatedAt, reservationId: null, reason));
                    d.Notes.Add(reason);
                }
                continue;
            }
            // Without a mapped location, where the order was once allocated is the best guess left.
            var locationId = mapped ?? d.Source.DefaultLocationId ?? d.Reservation?.Lines.FirstOrDefault(l => l.Sku == line.Sku)?.LocationId;
            if (locationId is null)
            {
                Reject(d, "unmapped-location",
                    $"Fulfillment {fulfillment.Id} shipped {line.Quantity} × '{line.Sku}' from Shopify location {fulfillment.LocationId ?? "(none)"}, which maps to no hub location and the source has no DefaultLocationId.");
                continue;
            }
            events.Add(Event(d, eventId, EventType.Shipped, line.Sku, locationId, line.Quantity, fulfillment.CreatedAt, reservationId: null));
        }
        return await Apply(d, events);
    }

    /// <summary>Releases the reservation when the refund cancels every unit it still allocates; a partial cancel cannot be applied.</summary>
    private async Task<ShopifyStop?> CancelLines(ShopifyDelivery d, Dictionary<string, long> cancelled)
    {
        d.Reservation = await Current(d.ReservationId!);
        if (d.Reservation is not { Status: Held or Committed } r)
        {
            d.Notes.Add($"Cancelled units: reservation {d.ReservationId} is {d.Reservation?.Status ?? "unknown"}; nothing to release.");
            return null;
        }
        var open = r.Lines.GroupBy(l => l.Sku, StringComparer.Ordinal)
            .Select(g => (Sku: g.Key, Units: g.Sum(l => l.Quantity - l.Shipped))).Where(x => x.Units > 0).ToList();
        if (open.All(x => cancelled.GetValueOrDefault(x.Sku) >= x.Units))
        {
            return await Release(d, "every unshipped unit was cancelled");
        }
        // The engine releases whole reservations only; units cancelled from a larger order stay
        // allocated until the order is cancelled or an operator releases it.
        Reject(d, "partial-cancel-not-applied",
            $"The refund cancels {string.Join(", ", cancelled.Select(c => $"{c.Value} × '{c.Key}'"))} but reservation {d.ReservationId} still allocates " +
            $"{string.Join(", ", open.Select(x => $"{x.Units} × '{x.Sku}'"))}; a part of a reservation cannot be released, so these units stay allocated.");
        return null;
    }

    private StockEvent Event(ShopifyDelivery d, string eventId, EventType type, string sku, string locationId, long quantity,
        DateTimeOffset? occurredAt, string? reservationId, string? reason = null)
    {
        var at = occurredAt ?? time.GetUtcNow();
        var source = ("shopify:" + d.SourceId) is { Length: <= Limits.IdLengthMax } s ? s : "shopify:" + d.SourceId[..(Limits.IdLengthMax - 8)];
        // The same construction as POST /v1/events, so the same event sent there is a duplicate.
        return EventEndpoints.Create(eventId, type, sku, locationId, quantity, at, source, d.CorrelationId, reason: reason, reservationId: reservationId);
    }

    private async Task<ShopifyStop?> Apply(ShopifyDelivery d, List<StockEvent> events)
    {
        if (events.Count == 0)
        {
            return null;
        }
        var outcomes = await EventEndpoints.Apply(engine, metrics, events);
        var raced = false;
        string? undeclared = null;
        for (var i = 0; i < outcomes.Length; i++)
        {
            var (e, o) = (events[i], outcomes[i]);
            d.Events.Add(new EventResultView(e.EventId, Shard.StatusName(o.Status),
                o.ErrorType is null ? null : new EventErrorView(Problems.TypeBase + o.ErrorType, o.ErrorDetail!)));
            switch (o.Status)
            {
                case EventStatus.Applied or EventStatus.Superseded or EventStatus.Stale:
                    d.Changed = true;
                    break;
                case EventStatus.Duplicate:
                    d.Repeated = true;
                    break;
                case EventStatus.Rejected when o.ErrorType == RejectionTypes.IdempotencyConflict:
                    // The id is derived from Shopify's ids, so an earlier delivery applied this very
                    // line, planned against the state of its time (another location or reservation).
                    d.Repeated = true;
                    break;
                case EventStatus.Rejected when o.ErrorType is RejectionTypes.UnknownReservation or RejectionTypes.ReservationNotCommitted
                    or RejectionTypes.ReservationLineNotFound:
                    // The reservation changed between reading it and deciding (a concurrent delivery
                    // for the same order); a rejected event is not remembered, so a redelivery plans again.
                    raced = true;
                    break;
                case EventStatus.Rejected when o.ErrorType == RejectionTypes.UnknownLocation:
                    // A mapped location the hub does not know is configuration, like an unknown channel:
                    // answered 503 so that the delivery applies once it is fixed.
                    undeclared = o.ErrorDetail;
                    break;
                default:
                    Reject(d, o.ErrorType!, $"{e.EventId}: {o.ErrorDetail}");
                    break;
            }
        }
        if (undeclared is not null)
        {
            return Misconfigured(d, RejectionTypes.UnknownLocation, undeclared);
        }
        return raced
            ? new ShopifyStop(StatusCodes.Status409Conflict, "order-changed", "The order changed while this delivery was decided.",
                $"Reservation {d.ReservationId} changed while this delivery was being decided; Shopify delivers it again and it is planned anew. Events already applied answer as duplicates.",
                ShopifyDeliveryOutcome.Deferred)
            : null;
    }

    private async Task<ReservationView?> Current(string reservationId) =>
        await engine.Read((s, _) => s.FindReservation(reservationId) is { } r ? Views.Of(r) : null)
        ?? (engine.HasForgotten ? ReservationEndpoints.TryArchived(engine, reservationId) : null);

    private void Reject(ShopifyDelivery d, string type, string detail)
    {
        d.Rejections.Add(new ShopifyRejection(Problems.TypeBase + type, detail));
        log.LogWarning("Shopify {Topic} (source {Source}, order {OrderId}, webhook {WebhookId}) rejected: {Type}: {Detail}",
            d.Topic, d.SourceId, d.OrderId, d.WebhookId, type, detail);
    }

    private ShopifyStop Misconfigured(ShopifyDelivery d, string type, string detail)
    {
        log.LogError("Shopify source {Source} is misconfigured ({Type}): {Detail} Deliveries fail until it is fixed (topic {Topic}, order {OrderId}, webhook {WebhookId}).",
            d.SourceId, type, detail, d.Topic, d.OrderId, d.WebhookId);
        return new ShopifyStop(StatusCodes.Status503ServiceUnavailable, "shopify-source-misconfigured", "The Shopify source is misconfigured.",
            $"{detail} Fix Truestock:ShopifySources:{d.SourceId} or the master data; Shopify delivers this webhook again for 4 hours.",
            ShopifyDeliveryOutcome.Misconfigured);
    }
}
