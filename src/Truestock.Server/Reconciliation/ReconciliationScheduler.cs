using Microsoft.Extensions.Options;
using Truestock.Server.Engine;

namespace Truestock.Server.Reconciliation;

/// <summary>
/// Runs the configured schedules (<c>Truestock:Reconciliation:Schedules:{name}</c>): every IntervalMinutes, the latest
/// complete snapshot uploaded for the schedule's system is run, unless it has been run already (running the same
/// snapshot twice would only repeat its variances and proposals). Only the writer hub runs schedules; a standby that
/// takes over picks them up at its next tick. Snapshots are uploaded (POST /v1/reconciliation/snapshots); the hub does
/// not read channels or the ERP by itself.
/// </summary>
internal sealed class ReconciliationScheduler(
    ReconciliationService service,
    Sequencer engine,
    TimeProvider time,
    IOptions<ReconciliationOptions> options,
    ILogger<ReconciliationScheduler> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var schedules = options.Value.Schedules.Where(s => Valid(s.Key, s.Value)).ToList();
        if (schedules.Count == 0)
        {
            return;
        }
        var due = schedules.ToDictionary(s => s.Key, s => time.GetUtcNow().AddMinutes(s.Value.IntervalMinutes), StringComparer.Ordinal);
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(Math.Max(1, options.Value.SchedulerPollSeconds)), time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                var now = time.GetUtcNow();
                foreach (var (name, schedule) in schedules)
                {
                    if (now < due[name])
                    {
                        continue;
                    }
                    due[name] = now.AddMinutes(schedule.IntervalMinutes);
                    if (engine.Role == EngineRole.Writer)
                    {
                        await RunOnce(name, schedule, stoppingToken).ConfigureAwait(false);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The host is stopping; a run in progress is recorded as it stands by the service.
        }
    }

    private async Task RunOnce(string name, ReconciliationSchedule schedule, CancellationToken stoppingToken)
    {
        var snapshot = engine.Journal.ReadLatestReconSnapshot(schedule.System, schedule.SystemId);
        if (snapshot is null)
        {
            log.LogInformation("Reconciliation schedule {Schedule}: no snapshot of {System} {SystemId} has been uploaded yet.", name, schedule.System, schedule.SystemId);
            return;
        }
        if (engine.Journal.ReadReconRuns(snapshot.SnapshotId, long.MaxValue, 1).Count > 0)
        {
            log.LogInformation("Reconciliation schedule {Schedule}: the latest snapshot of {System} {SystemId} ({SnapshotId}) was run already; waiting for a new one.",
                name, schedule.System, schedule.SystemId, snapshot.SnapshotId);
            return;
        }
        try
        {
            await service.Run(snapshot.SnapshotId, "schedule:" + name, stoppingToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // One failing schedule must not stop the others; the error is logged with the schedule's name and retried at its next interval.
            log.LogError(ex, "Reconciliation schedule {Schedule} failed on snapshot {SnapshotId}.", name, snapshot.SnapshotId);
        }
    }

    private bool Valid(string name, ReconciliationSchedule schedule)
    {
        if (ReconSystems.IsKnown(schedule.System) && Http.JsonInput.IsId(schedule.SystemId) && schedule.IntervalMinutes >= 1)
        {
            return true;
        }
        log.LogError("Reconciliation schedule {Schedule} is ignored: System must be erp, wms or channel, SystemId an id, IntervalMinutes at least 1.", name);
        return false;
    }
}
