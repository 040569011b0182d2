using Truestock.Server.Http;

namespace Truestock.Server.Ingestion;

/// <summary>Registration of polling sources and GET /v1/sources/polling (see docs/ingestion.md, "Polling sources").</summary>
internal static class PollingEndpoints
{
    /// <summary>
    /// Reads and checks <c>Truestock:PollingSources</c> now, so that a bad source stops the hub before
    /// it listens, with a message naming each setting at fault; then registers the status board and,
    /// when a source is enabled, the poller.
    /// </summary>
    public static IServiceCollection AddPollingSources(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        var sources = PollingSourceSettings.Load(configuration);
        services.AddSingleton(new PollingSourceBoard(sources));
        if (sources.Any(s => s.Enabled))
        {
            services.AddHostedService<PollingService>();
        }
        return services;
    }

    /// <summary>Maps the status endpoint and adds the polling figures to /metrics.</summary>
    public static void MapPollingSources(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var board = app.ServiceProvider.GetRequiredService<PollingSourceBoard>();
        app.ServiceProvider.GetRequiredService<HubMetrics>().Sections.Add(board.Render);
        app.MapGet("/v1/sources/polling", (PollingSourceBoard sources) => Results.Ok(sources.View()))
            .WithTags("Ingestion").RequireScope(Scopes.Admin).Produces<PollingSourcesView>()
            .WithSummary("Polling sources: state, next poll, last poll, last success, last error, items read and counts emitted, with the latest poll in detail.");
    }
}
