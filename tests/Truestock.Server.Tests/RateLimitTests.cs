using System.Net;

namespace Truestock.Server.Tests;

public sealed class RateLimitTests
{
    [Fact]
    public async Task a_client_over_its_rate_gets_429_with_retry_after_and_health_stays_open()
    {
        await using var hub = await HubServer.Start("--Truestock:ClientRequestsPerSecondMax=5");

        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? limited = null;
        for (var i = 0; i < 20; i++)
        {
            var response = await hub.Client.GetAsync("/v1/locations");
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                limited ??= response;
            }
        }

        Assert.Contains(HttpStatusCode.OK, statuses);
        Assert.NotNull(limited);
        Assert.Equal("application/problem+json", limited.Content.Headers.ContentType?.MediaType);
        Assert.True(limited.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
        Assert.EndsWith("rate-limited", (await HubServer.Json(limited)).GetProperty("type").GetString());
        Assert.Equal(HttpStatusCode.OK, (await hub.Client.GetAsync("/health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await hub.Client.GetAsync("/metrics")).StatusCode);
    }

    [Fact]
    public async Task without_a_configured_rate_no_request_is_limited()
    {
        await using var hub = await HubServer.Start();

        var statuses = await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => hub.Client.GetAsync("/v1/locations")));

        Assert.All(statuses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
    }
}
