namespace Truestock.Connectors.Erp;

/// <summary>One stock movement to book in the ERP: the on-hand change one ledger row made at one location.</summary>
/// <param name="Key">
/// The idempotency key, <c>eventId:locationId</c>: the same on every attempt, so the ERP books the movement once
/// however often it is sent (a transfer has two ledger rows, one per location, hence the location in the key).
/// </param>
/// <param name="EventId">The hub event that made the movement.</param>
/// <param name="Sku">The hub's SKU (connectors map it to the ERP's product).</param>
/// <param name="LocationId">The hub's location id (connectors map it to the ERP's location).</param>
/// <param name="Type">The event type (<c>received</c>, <c>sold</c>, <c>counted</c>, …), for the ERP's reference.</param>
/// <param name="Quantity">The event's own quantity (for a count, the counted quantity).</param>
/// <param name="OnHandDelta">The change of on-hand units the movement made at the location; never 0.</param>
/// <param name="OnHandAfter">The hub's on-hand quantity at the location right after the movement.</param>
/// <param name="OccurredAt">When the movement happened at its source.</param>
/// <param name="Source">The system that reported the event.</param>
public sealed record ErpMovement(
    string Key, string EventId, string Sku, string LocationId, string Type, long Quantity, long OnHandDelta, long OnHandAfter,
    DateTimeOffset OccurredAt, string Source);

/// <summary>How the ERP took one movement.</summary>
public enum ErpPostStatus
{
    /// <summary>The ERP booked the movement (now, or on an earlier attempt with the same key).</summary>
    Posted,
    /// <summary>A failure worth retrying later: timeout, outage, throttled beyond the connector's own retries.</summary>
    Transient,
    /// <summary>A failure no retry will fix (unknown product or location, authentication, validation): dead-letter it.</summary>
    Permanent,
}

/// <summary>The result of posting one movement.</summary>
/// <param name="Key">The movement's idempotency key.</param>
/// <param name="Status">Posted, transient or permanent failure.</param>
/// <param name="DocumentId">The ERP's id of the document that books the movement, when posted and the ERP gives one.</param>
/// <param name="Error">The ERP's own error text (bounded) for failures; null when posted.</param>
public sealed record ErpPostOutcome(string Key, ErpPostStatus Status, string? DocumentId = null, string? Error = null);

/// <summary>
/// Books stock movements in an ERP, in the ERP's own wire format. A connector keeps to the configured request rate and
/// concurrency itself (token bucket and a limit on requests in flight), honours the ERP's throttle answers, and makes
/// every movement idempotent by its <see cref="ErpMovement.Key"/>, so the hub may send a movement again after any
/// failure or crash without it being booked twice.
/// </summary>
public interface IErpConnector : IAsyncDisposable
{
    /// <summary>The largest number of movements one <see cref="PostAsync"/> call takes.</summary>
    int BatchSizeMax { get; }

    /// <summary>Counters for metrics (calls, throttles, failures).</summary>
    ConnectorCounters Counters { get; }

    /// <summary>
    /// Posts a batch (at most <see cref="BatchSizeMax"/> movements with distinct keys and non-zero deltas). Returns one
    /// outcome per movement, in any order. Throws only for bugs, invalid arguments and cancellation; ERP failures are outcomes.
    /// </summary>
    Task<IReadOnlyList<ErpPostOutcome>> PostAsync(IReadOnlyList<ErpMovement> movements, CancellationToken cancellationToken);
}

/// <summary>What an ERP connector gets from the hub.</summary>
/// <param name="Http">An HttpClient without base address (connectors build absolute URLs) and without its own timeout.</param>
/// <param name="Time">The clock for rate limiting, timeouts and backoff.</param>
/// <param name="Credential">
/// Looks up a named secret of the ERP's credential set (configuration <c>Truestock:Credentials:{set}:{name}</c>);
/// null when absent. Secrets are never logged and never appear in an outcome's error.
/// </param>
public sealed record ErpContext(HttpClient Http, TimeProvider Time, Func<string, string?> Credential);

/// <summary>Creates ERP connectors from validated settings.</summary>
public static class ErpConnectorFactory
{
    /// <summary>The ERP kinds this build supports.</summary>
    public static IReadOnlyList<string> Kinds { get; } = [ErpSettings.KindRest, ErpSettings.KindOdoo];

    /// <summary>Creates the connector; throws <see cref="ArgumentException"/> naming the setting when the settings are invalid.</summary>
    public static IErpConnector Create(ErpSettings settings, ErpContext context)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(context);
        if (settings.Validate() is { } error)
        {
            throw new ArgumentException($"Invalid ERP settings: {error}", nameof(settings));
        }
        return settings.Kind == ErpSettings.KindOdoo
            ? new OdooErpConnector(settings, context)
            : new RestErpConnector(settings, context);
    }
}
