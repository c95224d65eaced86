// Azure SignalR Service in Serverless mode: clients only listen; the functions send through the
// service's REST API (the same sender the standalone hub implements locally).
param baseName string
param location string
param sku string
param tags object

resource signalr 'Microsoft.SignalRService/signalR@2024-03-01' = {
  name: toLower('${baseName}-signalr')
  location: location
  tags: tags
  kind: 'SignalR'
  sku: {
    name: sku
    capacity: 1
  }
  properties: {
    features: [
      {
        flag: 'ServiceMode'
        value: 'Serverless'
      }
      {
        flag: 'EnableConnectivityLogs'
        value: 'True'
      }
    ]
    cors: {
      allowedOrigins: [
        '*'
      ]
    }
    tls: {
      clientCertEnabled: false
    }
  }
}

output name string = signalr.name
output hostName string = signalr.properties.hostName
