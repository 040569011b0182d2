using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.Json;
using Truestock.Server.Engine;
using Truestock.Server.Http;
using Truestock.Server.Ingestion;

namespace Truestock.Server;

/// <summary>Builds the hub: configuration, the engine, and the HTTP API.</summary>
public static class HubApp
{
    /// <summary>The address the hub listens on when none is configured.</summary>
    public const string DefaultUrl = "http://127.0.0.1:5080";

    /// <summary>Builds the web application; tests pass their own clock.</summary>
    public static WebApplication Build(string[] args, TimeProvider? time = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(builder.Configuration["ASPNETCORE_URLS"]))
        {
            builder.WebHost.UseUrls(DefaultUrl);
        }
        var options = builder.Configuration.GetSection("Truestock").Get<HubOptions>() ?? new HubOptions();
        builder.Services.Configure<HubOptions>(builder.Configuration.GetSection("Truestock"));
        builder.WebHost.ConfigureKestrel(k =>
        {
            // The API checks its own limit to answer problem+json; Kestrel's is a backstop just above it.
            k.Limits.MaxRequestBodySize = options.RequestBodyBytesMax + 64 * 1024;
            k.AddServerHeader = false;
        });
        builder.Services.AddSingleton(time ?? TimeProvider.System);
        builder.Services.AddSingleton<HubMetrics>();
        builder.Services.AddSingleton<ApiKeys>();
        builder.Services.AddSingleton<Channels.SyncSignal>();
        builder.Services.AddSingleton<Sequencer>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<Sequencer>());
        if (!string.IsNullOrWhiteSpace(options.RabbitMq.Uri))
        {
            builder.Services.AddHostedService<Ingestion.RabbitMqConsumer>();
        }
        // --- services: channel sync
        builder.Services.AddSingleton<Channels.ChannelPublisher>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<Channels.ChannelPublisher>());
        // --- exceptions workflow and reports
        Exceptions.ExceptionEndpoints.AddExceptionWorkflow(builder.Services);
        // --- services: file imports
        // --- reconciliation
        Reconciliation.ReconciliationEndpoints.AddReconciliation(builder.Services, builder.Configuration);
        // --- services: ERP posting
        Erp.ErpEndpoints.AddErpPosting(builder.Services, builder.Configuration);
        // --- services: polling sources
        builder.Services.AddPollingSources(builder.Configuration);
        // --- services: Shopify webhooks in
        builder.Services.AddShopifyWebhooks(builder.Configuration);
        builder.Services.AddProblemDetails();
        builder.Services.AddRateLimiter(o => ClientRateLimit.Configure(o, options.ClientRequestsPerSecondMax));
        builder.Services.AddOpenApi();
        builder.Services.Configure<JsonOptions>(o =>
        {
            o.SerializerOptions.DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull;
        });

        var app = builder.Build();
        var shopifyWebhookMetrics = app.Services.GetRequiredService<ShopifyWebhookMetrics>();
        app.Services.GetRequiredService<HubMetrics>().Sections.Add(shopifyWebhookMetrics.Render);
        app.UseCorrelationIds();
        app.UseExceptionHandler(new ExceptionHandlerOptions { ExceptionHandler = HandleException });
        app.UseStatusCodePages(async context =>
        {
            // Only bodiless answers reach here: unknown paths (404), wrong methods (405) and content types (415).
            var http = context.HttpContext;
            var status = http.Response.StatusCode;
            var (slug, title, detail) = status switch
            {
                405 => ("method-not-allowed", "Method not allowed.", $"{http.Request.Method} is not allowed on {http.Request.Path}."),
                415 => ("unsupported-media-type", "Unsupported media type.",
                    $"{http.Request.Path} does not accept Content-Type '{http.Request.ContentType}'; send application/json (see /openapi/v1.json)."),
                _ => ("not-found", "Not found.", $"There is nothing at {http.Request.Path}; see /openapi/v1.json."),
            };
            await Problems.Create(status, slug, title, detail).ExecuteAsync(http);
        });
        app.UseRateLimiter();
        app.MapOpenApi("/openapi/v1.json");
        app.MapMasterData();
        app.MapEvents();
        app.MapReservations();
        app.MapAvailability();
        app.MapOperations();
        // --- channel sync (publisher, dead letters)
        app.MapChannelSync();
        // --- exceptions workflow and reports
        Exceptions.ExceptionEndpoints.MapExceptionWorkflow(app);
        Exceptions.ReportEndpoints.MapReports(app);
        // --- file imports (CSV)
        app.MapImports();
        // --- reconciliation
        Reconciliation.ReconciliationEndpoints.MapReconciliation(app);
        // --- ERP posting (status, dead letters)
        Erp.ErpEndpoints.MapErpPosting(app);
        // --- polling sources
        app.MapPollingSources();
        // --- Shopify webhooks in
        app.MapShopifyWebhooks();
        return app;
    }

    /// <summary>The schema script of a store ("postgres" or "sqlite"), as the hub applies it on start.</summary>
    public static string MigrationScript(string store)
    {
        using Storage.AdoJournal journal = store == "postgres"
            ? new Storage.PostgresJournal("Host=localhost")
            : new Storage.SqliteJournal(":memory:");
        return journal.MigrationScript();
    }

    private static async Task HandleException(HttpContext http)
    {
        http.Response.Headers[Correlation.Header] = http.CorrelationId();
        var error = http.Features.Get<IExceptionHandlerFeature>()?.Error;
        IResult result;
        if (error is EngineUnavailableException unavailable)
        {
            http.Response.Headers.RetryAfter = "1";
            result = Problems.Create(StatusCodes.Status503ServiceUnavailable, "unavailable", "Temporarily unavailable.", unavailable.Message);
        }
        else if (error is BadHttpRequestException bad)
        {
            result = Problems.Create(bad.StatusCode, bad.StatusCode == 413 ? "body-too-large" : "bad-request", "Bad request.", bad.Message);
        }
        else
        {
            result = Problems.Create(StatusCodes.Status500InternalServerError, "internal-error", "Internal error.",
                "The hub failed to handle the request; the error is logged with the request's correlation id.");
        }
        await result.ExecuteAsync(http);
    }
}
