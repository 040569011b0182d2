namespace Truestock.Server.Channels;

/// <summary>
/// Wakes the channel publishers when the engine has written new outbox rows, so a change is
/// published at once instead of at the next poll. Waiters take <see cref="Current"/> before they
/// look for work, so a notification between the look and the wait is never missed.
/// </summary>
internal sealed class SyncSignal
{
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when the next notification arrives.</summary>
    public Task Current => Volatile.Read(ref _next).Task;

    /// <summary>Wakes everyone waiting on <see cref="Current"/>.</summary>
    public void Notify() =>
        Interlocked.Exchange(ref _next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
}
