// What kcat cannot show: a topic's replication settings as the brokers hold them.
// Run with the Kafka jars deploy/stack.sh downloads (Java's source launcher, no build step):
//   java -cp "$HOME/.cache/chat-stack/jars/kafka/*" deploy/cluster/TopicInfo.java BOOTSTRAP TOPIC
// prints one line: partitions=16 replication.factor=3 min.insync.replicas=2
// (replication.factor is the smallest replica count of any partition). Exit 1 on any error.

import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.config.ConfigResource;

public class TopicInfo {
    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: TopicInfo BOOTSTRAP TOPIC");
            System.exit(2);
        }
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "15000");
        try (Admin admin = Admin.create(props)) {
            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, args[1]);
            Config config = admin.describeConfigs(List.of(res)).all().get(20, TimeUnit.SECONDS).get(res);
            TopicDescription topic =
                    admin.describeTopics(List.of(args[1])).allTopicNames().get(20, TimeUnit.SECONDS).get(args[1]);
            int rf = topic.partitions().stream().mapToInt(p -> p.replicas().size()).min().orElse(0);
            System.out.printf("partitions=%d replication.factor=%d min.insync.replicas=%s%n",
                    topic.partitions().size(), rf, config.get("min.insync.replicas").value());
        } catch (Exception e) {
            System.err.println("TopicInfo: " + e);
            for (Throwable c = e.getCause(); c != null; c = c.getCause()) System.err.println("  caused by: " + c);
            System.exit(1);
        }
    }
}
