using System.Net.Http.Json;

namespace Truestock.Server.Tests;

/// <summary>
/// Writers that post random receipts and sales of <c>WH1</c> to a hub as fast as it takes them, until the hub is
/// killed or the burst is stopped, for tests that kill the hub in the middle of a stream of changes.
/// </summary>
internal sealed class EventBurst : IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task[] _writers;
    private int _acknowledged;

    /// <summary>Starts <paramref name="writers"/> writers, each posting <paramref name="eventsPerRequest"/> events a request.</summary>
    public EventBurst(HttpClient client, string[] skus, int eventsPerRequest, int writers = 4)
    {
        _writers = Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            // Seeded per writer, so that a failing run can be repeated.
            var random = new Random(w);
            while (!_stop.IsCancellationRequested)
            {
                var events = Enumerable.Range(0, eventsPerRequest).Select(_ => random.Next(3) == 0
                    ? HubServer.Event("sold", skus[random.Next(skus.Length)], "WH1", 1)
                    : HubServer.Event("received", skus[random.Next(skus.Length)], "WH1", random.Next(1, 5))).ToArray();
                try
                {
                    var response = await client.PostAsJsonAsync("/v1/events", new { events });
                    if (response.StatusCode == System.Net.HttpStatusCode.ServiceUnavailable)
                    {
                        // Busy or briefly unavailable: nothing was applied; a real source retries.
                        await Task.Delay(20);
                        continue;
                    }
                    response.EnsureSuccessStatusCode();
                    Interlocked.Increment(ref _acknowledged);
                }
                catch (HttpRequestException)
                {
                    return; // The process is gone.
                }
                catch (TaskCanceledException)
                {
                    return;
                }
            }
        })).ToArray();
    }

    /// <summary>Requests the hub has acknowledged so far.</summary>
    public int Acknowledged => Volatile.Read(ref _acknowledged);

    /// <summary>Stops the writers, waits for them, and returns the requests the hub acknowledged.</summary>
    public async Task<int> StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_writers);
        return Acknowledged;
    }

    public void Dispose() => _stop.Dispose();
}
