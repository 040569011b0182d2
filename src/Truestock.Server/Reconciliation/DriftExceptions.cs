using Truestock.Server.Exceptions;
using Truestock.Server.Storage;

namespace Truestock.Server.Reconciliation;

/// <summary>
/// Where a variance over its system's threshold becomes an exception for a person: the one call site between
/// reconciliation and the exceptions workflow (<see cref="ExceptionWorkflow.Raise"/>). The exception is keyed by
/// system, SKU and location or channel, so that the same drift found by every scheduled run stays one item.
/// </summary>
/// <remarks>
/// The workflow is looked up rather than injected, so that reconciliation keeps working (recording over-threshold
/// variances with <c>exception_ref</c> empty) on a build where the workflow's services are not registered.
/// </remarks>
internal sealed class DriftExceptions(IServiceProvider services)
{
    /// <summary>The exception kind reconciliation raises.</summary>
    public const string Kind = "drift";

    private const int DetailLengthMax = 1000;

    /// <summary>Raises (or refreshes) the exception of an over-threshold variance; returns its key, or null when no workflow is registered.</summary>
    public string? Raise(ReconVarianceRecord variance, ReconSnapshotRecord snapshot)
    {
        ArgumentNullException.ThrowIfNull(variance);
        ArgumentNullException.ThrowIfNull(snapshot);
        if (services.GetService<ExceptionWorkflow>() is not { } workflow)
        {
            return null;
        }
        var system = snapshot.System == ReconSystems.Channel ? "channel:" + snapshot.SystemId : snapshot.System;
        var where = variance.ChannelId is { } channel ? "channel " + channel : "location " + variance.LocationId;
        var detail = $"{snapshot.System} '{snapshot.SystemId}' reports {variance.Reported} of {variance.Sku} at {where} as of {snapshot.AsOf:O}; "
            + $"the hub expects {variance.Expected}. Probable cause: {variance.Cause}. {variance.CauseDetail} Repair: {variance.Repair}.";
        if (detail.Length > DetailLengthMax)
        {
            detail = detail[..(DetailLengthMax - 1)] + "…";
        }
        var figures = new DriftFigures(variance.Expected, variance.Reported, system,
            $"run:{variance.RunId}/variance:{variance.VarianceNo}",
            $"recon:{snapshot.System}:{snapshot.SystemId}:{variance.Sku}:{variance.LocationId ?? variance.ChannelId}");
        return workflow.Raise(Kind, variance.Sku, variance.LocationId, variance.ChannelId, variance.Difference ?? 0, detail, figures).Key;
    }
}
